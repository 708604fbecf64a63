#!/usr/bin/env bash
# Installs what bosun needs from Debian's packages on a fresh Debian 12 machine.
# Idempotent: packages already installed are not touched, and apt is not even
# updated when nothing is missing. Run as root (or with sudo).
set -euo pipefail

PACKAGES=(
  containerd runc containernetworking-plugins   # the runtime stack
  nftables conntrack iproute2 iptables          # Service routing, CNI masquerade, netns
  protobuf-compiler libprotobuf-dev             # gRPC bindings (containerd-client, k8s-cri, etcd-client: well-known types)
  docker-registry skopeo                        # loopback registry and pushing our images
  etcd-server etcd-client                       # the store contract's etcd backend
  busybox-static                                # the app image
  python3-kubernetes                            # the official Python client, one of the API tests' clients
  curl ca-certificates
  systemd                                       # systemd-analyze verifies bosun's units; tests boot it in a namespace
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Packaged daemons may have been started by the package (where systemd runs);
# bosun never uses them: it runs its own containerd and registry.
for tool in containerd runc nft ip docker-registry skopeo ctr protoc busybox systemd-analyze etcd etcdctl; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is missing after install" >&2; exit 1; }
done
/usr/bin/python3 -c "import kubernetes" || { echo "setup: python3-kubernetes missing" >&2; exit 1; }
test -x /usr/lib/cni/bridge || { echo "setup: CNI plugins missing in /usr/lib/cni" >&2; exit 1; }
echo "setup: ok"
