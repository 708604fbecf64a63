//! The fake's `ImageService`: list, inspect, pull and remove images held in
//! the in-memory image store. `ImageFsInfo` answers `Unimplemented`.

use bosun_proto::cri::{self as api, image_service_server::ImageService};
use tonic::Request;

use super::service::{image_name, reply, Answer, FakeService};

#[tonic::async_trait]
impl ImageService for FakeService {
    async fn list_images(&self, _req: Request<api::ListImagesRequest>) -> Answer<api::ListImagesResponse> {
        self.gate("ListImages", "").await?;
        let images = self.fake.lock().world.images.list();
        reply(api::ListImagesResponse { images })
    }

    async fn image_status(&self, req: Request<api::ImageStatusRequest>) -> Answer<api::ImageStatusResponse> {
        let image = image_name(req.into_inner().image.as_ref());
        self.gate("ImageStatus", image.clone()).await?;
        let found = self.fake.lock().world.images.find(&image).cloned();
        reply(api::ImageStatusResponse { image: found, info: Default::default() })
    }

    async fn pull_image(&self, req: Request<api::PullImageRequest>) -> Answer<api::PullImageResponse> {
        let image = image_name(req.into_inner().image.as_ref());
        self.gate("PullImage", image.clone()).await?;
        let image_ref = self.fake.lock().world.images.pull(&image)?;
        reply(api::PullImageResponse { image_ref })
    }

    async fn remove_image(&self, req: Request<api::RemoveImageRequest>) -> Answer<api::RemoveImageResponse> {
        let image = image_name(req.into_inner().image.as_ref());
        self.gate("RemoveImage", image.clone()).await?;
        self.fake.lock().world.images.remove(&image);
        reply(api::RemoveImageResponse {})
    }

    async fn image_fs_info(&self, _req: Request<api::ImageFsInfoRequest>) -> Answer<api::ImageFsInfoResponse> {
        self.unimplemented("ImageFsInfo").await
    }
}
