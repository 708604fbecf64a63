//! Images only the integration tests use; a test pushes them to its
//! cluster's registry beside `pause` and `app`. Both are the app image
//! (busybox) with one change:
//! - `app-stopsignal`: its OCI config says `StopSignal: SIGUSR1`, so a
//!   runtime stops its containers with SIGUSR1 instead of SIGTERM;
//! - `probe-target`: adds `/bin/probe-target` (`images/probe-target`, a
//!   static binary like `pause`), a gRPC health and HTTPS server for probes;
//! - `in-cluster-client`: adds `/bin/in-cluster-client`
//!   (`images/in-cluster-client`, static too), a kube-rs in-cluster client
//!   that prints what its ServiceAccount may list.

use std::path::Path;

use crate::catalog::app_image;
use crate::layer::{Entry, FileContents};
use crate::layout::ImageSpec;

pub const STOP_SIGNAL_REPOSITORY: &str = "bosun/app-stopsignal";
pub const PROBE_TARGET_REPOSITORY: &str = "bosun/probe-target";
pub const IN_CLUSTER_CLIENT_REPOSITORY: &str = "bosun/in-cluster-client";
pub const FIXTURE_TAG: &str = "1.0";
/// The stop signal of the `app-stopsignal` image.
pub const FIXTURE_STOP_SIGNAL: &str = "SIGUSR1";

/// The app image with `StopSignal: SIGUSR1` in its config.
pub fn stop_signal_image(busybox: &Path) -> ImageSpec {
    ImageSpec {
        repository: STOP_SIGNAL_REPOSITORY.into(),
        tag: FIXTURE_TAG.into(),
        stop_signal: Some(FIXTURE_STOP_SIGNAL.into()),
        ..app_image(busybox)
    }
}

/// The app image plus `/bin/probe-target`.
pub fn probe_target_image(busybox: &Path, probe_target: &Path) -> ImageSpec {
    app_image_with_binary(busybox, PROBE_TARGET_REPOSITORY, "bin/probe-target", probe_target)
}

/// The app image plus `/bin/in-cluster-client`.
pub fn in_cluster_client_image(busybox: &Path, client: &Path) -> ImageSpec {
    app_image_with_binary(busybox, IN_CLUSTER_CLIENT_REPOSITORY, "bin/in-cluster-client", client)
}

/// The app image as `repository`, plus the host file `binary` at `path`.
fn app_image_with_binary(busybox: &Path, repository: &str, path: &str, binary: &Path) -> ImageSpec {
    let mut spec = app_image(busybox);
    spec.repository = repository.into();
    spec.tag = FIXTURE_TAG.into();
    spec.entries.push(Entry::File {
        path: path.into(),
        mode: 0o755,
        contents: FileContents::HostFile(binary.to_path_buf()),
    });
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_differ_from_the_app_image_only_where_named() {
        let busybox = Path::new("/bin/busybox");
        let app = app_image(busybox);
        let stop = stop_signal_image(busybox);
        assert_eq!(stop.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!((stop.cmd, stop.entries.len()), (app.cmd.clone(), app.entries.len()));
        let probe = probe_target_image(busybox, Path::new("/x/probe-target"));
        assert_eq!(probe.stop_signal, None);
        assert_eq!(probe.entries.len(), app.entries.len() + 1);
        assert_eq!(probe.repository, "bosun/probe-target");
        let client = in_cluster_client_image(busybox, Path::new("/x/in-cluster-client"));
        assert_eq!(
            (client.repository.as_str(), client.entries.len()),
            ("bosun/in-cluster-client", app.entries.len() + 1)
        );
    }
}
