//! skiff's pieces of a virtual machine monitor. For now the virtio-vsock device, served to
//! QEMU through vhost-user.

pub mod vsock;
