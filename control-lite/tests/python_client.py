"""The CRUD, paging and watch flow of control-lite's API through the official
Python client (Debian's python3-kubernetes). Prints one JSON object per step;
control-lite/tests/python_client.rs runs it against a real apiserver and checks
the output. Usage: python3 python_client.py KUBECONFIG"""

import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def out(**fields):
    print(json.dumps(fields), flush=True)


def main():
    config.load_kube_config(config_file=sys.argv[1])
    v1 = client.CoreV1Api()
    ns = "py"
    v1.create_namespace({"metadata": {"name": ns}})
    cm = v1.create_namespaced_config_map(
        ns, {"metadata": {"name": "c1", "labels": {"app": "py"}}, "data": {"k": "v1"}})
    out(step="created", name=cm.metadata.name, data=cm.data)

    listed = v1.list_namespaced_config_map(ns, label_selector="app=py")
    start = listed.metadata.resource_version
    out(step="listed", names=[i.metadata.name for i in listed.items])

    for i in range(5):
        v1.create_namespaced_config_map(ns, {"metadata": {"name": f"page-{i}"}})
    names, token, pages = [], None, 0
    while True:
        page = v1.list_namespaced_config_map(ns, limit=2, _continue=token)
        pages += 1
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    out(step="paged", names=names, pages=pages)

    patched = v1.patch_namespaced_config_map("c1", ns, {"data": {"k": "v2"}})
    out(step="patched", data=patched.data)
    stale = cm
    stale.data = {"k": "stale"}
    try:
        v1.replace_namespaced_config_map("c1", ns, stale)
        out(step="conflict", status=200)
    except ApiException as e:
        out(step="conflict", status=e.status, reason=json.loads(e.body).get("reason"))

    v1.delete_namespaced_config_map("c1", ns)
    try:
        v1.read_namespaced_config_map("c1", ns)
        out(step="read-deleted", status=200)
    except ApiException as e:
        out(step="read-deleted", status=e.status)

    events = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=30):
        events.append([event["type"], event["object"].metadata.name])
        if event["type"] == "DELETED" and event["object"].metadata.name == "c1":
            w.stop()
    out(step="watched", events=events)


main()
