//! Calls of the CRI `ImageService`.
//!
//! Owns: pulling, inspecting, listing and removing images. A failed pull is
//! reported as [`Error::ImagePull`] carrying the runtime's text verbatim, since
//! that text is the registry's answer the user needs to see (bad tag, auth).

use bosun_proto::cri as api;

use crate::client::{gone_is_ok, rpc, CriClient};
use crate::error::{Error, Result};

fn image_target(image: &str) -> String {
    format!("image {image:?}")
}

fn spec(image: &str) -> api::ImageSpec {
    api::ImageSpec { image: image.to_string(), ..Default::default() }
}

impl CriClient {
    /// Pulls `image` (with `pull_timeout` as deadline); returns the image
    /// reference the runtime resolved it to.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox: Option<&api::PodSandboxConfig>,
    ) -> Result<String> {
        let req = api::PullImageRequest { image: Some(spec(image)), auth, sandbox_config: sandbox.cloned() };
        let result = self
            .unary_within(
                self.opts.pull_timeout,
                "PullImage",
                || image_target(image),
                rpc!(self.images, pull_image, req),
            )
            .await;
        match result {
            Ok(resp) => Ok(resp.image_ref),
            Err(Error::Rpc { status, .. }) => Err(Error::ImagePull { image: image.to_string(), status }),
            Err(other) => Err(other),
        }
    }

    /// The image if the runtime has it, `None` if it does not.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let req = api::ImageStatusRequest { image: Some(spec(image)), verbose: false };
        let result = self.unary("ImageStatus", || image_target(image), rpc!(self.images, image_status, req)).await;
        match result {
            Ok(resp) => Ok(resp.image),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All images the runtime has.
    pub async fn list_images(&self) -> Result<Vec<api::Image>> {
        let req = api::ListImagesRequest { filter: None };
        let resp = self.unary("ListImages", || "images".into(), rpc!(self.images, list_images, req)).await?;
        Ok(resp.images)
    }

    /// Usage of the filesystems that hold images (`ImageFsInfo`).
    pub async fn image_fs_info(&self) -> Result<Vec<api::FilesystemUsage>> {
        let req = api::ImageFsInfoRequest {};
        let resp =
            self.unary("ImageFsInfo", || "image filesystem".into(), rpc!(self.images, image_fs_info, req)).await?;
        Ok(resp.image_filesystems)
    }

    /// Removes an image. Ok if the runtime does not have it.
    pub async fn remove_image(&self, image: &str) -> Result<()> {
        let req = api::RemoveImageRequest { image: Some(spec(image)) };
        let result = self.unary("RemoveImage", || image_target(image), rpc!(self.images, remove_image, req)).await;
        gone_is_ok(result.map(drop))
    }
}
