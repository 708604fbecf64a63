//! `bosun images`: build bosun's images as OCI layouts, push them to a
//! registry, or import archives into containerd (air-gapped nodes).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bosun_images::{build_all, publish, ImageSource};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Build the pause and app images as OCI layouts (and archives) under --out.
    Build {
        #[arg(long)]
        out: PathBuf,
        /// Our static pause binary (`make pause`).
        #[arg(long, env = "BOSUN_PAUSE_BINARY")]
        pause_binary: PathBuf,
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// Also write `<repository>_<tag>.tar` archives naming the images under this registry.
        #[arg(long, default_value = "127.0.0.1:5000")]
        registry: String,
    },
    /// Build the images and push them to a registry (plain HTTP).
    Push {
        #[arg(long, default_value = "127.0.0.1:5000")]
        registry: String,
        #[arg(long)]
        work_dir: PathBuf,
        #[arg(long, env = "BOSUN_PAUSE_BINARY")]
        pause_binary: PathBuf,
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
    },
    /// Import OCI image archives into containerd's CRI namespace.
    Import {
        /// containerd's socket.
        #[arg(long)]
        address: PathBuf,
        #[arg(long, default_value = "k8s.io")]
        namespace: String,
        archives: Vec<PathBuf>,
    },
}

pub fn run(command: ImagesCommand) -> Result<()> {
    match command {
        ImagesCommand::Build { out, pause_binary, busybox, registry } => {
            for layout in build_all(&out, &ImageSource { pause_binary, busybox })? {
                let reference = layout.reference(&registry);
                let archive = publish::stage_archive(&layout, &reference, &out.join("archives"))?;
                println!("{reference}\t{}\t{}", layout.manifest_digest, archive.display());
            }
        }
        ImagesCommand::Push { registry, work_dir, pause_binary, busybox } => {
            for layout in build_all(&work_dir, &ImageSource { pause_binary, busybox })? {
                println!("{}", publish::push(&layout, &registry)?);
            }
        }
        ImagesCommand::Import { address, namespace, archives } => {
            for archive in archives {
                publish::import_archive(&archive, &address, &namespace)
                    .with_context(|| format!("importing {}", archive.display()))?;
                println!("imported {}", archive.display());
            }
        }
    }
    Ok(())
}
