//! The [`VsockDevice`] behind a vhost-user socket, for QEMU's `vhost-user-vsock-device`.
//!
//! vhost-user-backend runs one worker thread that waits on the queues' kick eventfds; the
//! device's own epoll fd (all host sockets) is added to that same wait as one extra event, so a
//! single thread does everything and never polls.
//!
//! ```text
//! -object memory-backend-memfd,id=mem,size=256M,share=on  -M ...,memory-backend=mem
//! -chardev socket,id=vsk,path=<vhost socket> -device vhost-user-vsock-device,chardev=vsk
//! ```
//! Guest RAM must be shared (memfd with `share=on`); the CID comes from this backend.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::{anyhow, bail, Context, Result};
use tracing::{debug, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Error as VhostUserError, Listener};
use vhost_user_backend::{
    Error as DaemonError, VhostUserBackendMut, VhostUserDaemon, VringRwLock, VringT,
};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::device::{DeviceError, VsockDevice, EVENT_QUEUE, NUM_QUEUES, RX_QUEUE, TX_QUEUE};
use super::VsockConfig;

/// Largest ring we accept; QEMU asks for 128.
const MAX_QUEUE_SIZE: usize = 1024;
/// Event id of the device's epoll fd; vhost-user-backend reserves 0..=NUM_QUEUES.
const HOST_EVENT: u16 = NUM_QUEUES as u16 + 1;

/// A bound vhost-user vsock backend: both sockets exist, so QEMU (and host clients) can be
/// started. [`serve`](Self::serve) then runs the device for one QEMU.
pub struct VhostUserVsock {
    listener: Listener,
    device: VsockDevice,
    socket: PathBuf,
}

impl VhostUserVsock {
    /// Binds the vhost-user socket at `vhost_socket` (replacing any file there) and the host
    /// socket at `config.uds_path`. Both are removed again when the backend is dropped.
    pub fn bind(vhost_socket: &Path, config: VsockConfig) -> Result<VhostUserVsock> {
        // 0-2 are reserved, and CIDs are 32-bit with u32::MAX meaning "any".
        if config.guest_cid < 3 || config.guest_cid >= u64::from(u32::MAX) {
            bail!("guest CID {} is reserved or out of range", config.guest_cid);
        }
        let device = VsockDevice::new(&config).with_context(|| {
            format!(
                "cannot set up vsock host socket {}",
                config.uds_path.display()
            )
        })?;
        let listener = Listener::new(vhost_socket, true).with_context(|| {
            format!(
                "cannot listen on vhost-user socket {}",
                vhost_socket.display()
            )
        })?;
        Ok(VhostUserVsock {
            listener,
            device,
            socket: vhost_socket.to_owned(),
        })
    }

    /// Waits for one vhost-user frontend (QEMU), serves it until it disconnects, then returns.
    /// A frontend that goes away (QEMU exiting or killed) is a normal end, `Ok(())`. All
    /// connections to host sockets are closed on return.
    pub fn serve(self) -> Result<()> {
        let VhostUserVsock {
            mut listener,
            device,
            socket,
        } = self;
        let device_fd = device.as_raw_fd();
        let lent_fds = Arc::new(Mutex::new(Vec::new()));
        let backend = Arc::new(RwLock::new(Backend::new(device, lent_fds.clone())?));

        let result = run_daemon(&mut listener, backend, device_fd, &socket);

        // The daemon and its worker thread are gone: close what vhost-user-backend leaked.
        for fd in lent_fds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            // SAFETY: `exit_event` handed out a fresh dup of our eventfd that vhost-user-backend
            // turns into a raw fd and never closes; its epoll, the only user, has been dropped.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        result
    }
}

/// Listens on `vhost_socket` and serves one vhost-user frontend (QEMU) until it disconnects.
/// Blocking. Use [`VhostUserVsock::bind`] and [`VhostUserVsock::serve`] instead when QEMU must
/// only be started once the socket exists.
pub fn serve_vhost_user(vhost_socket: &Path, config: VsockConfig) -> Result<()> {
    VhostUserVsock::bind(vhost_socket, config)?.serve()
}

fn run_daemon(
    listener: &mut Listener,
    backend: Arc<RwLock<Backend>>,
    device_fd: RawFd,
    socket: &Path,
) -> Result<()> {
    let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
    let mut daemon = VhostUserDaemon::new("skiff-vsock".to_owned(), backend, mem)
        .map_err(|e| anyhow!("cannot create the vhost-user daemon: {e}"))?;
    {
        let handlers = daemon.get_epoll_handlers();
        let worker = handlers
            .first()
            .context("vhost-user daemon has no worker")?;
        worker
            .register_listener(device_fd, EventSet::IN, u64::from(HOST_EVENT))
            .context("cannot watch the vsock host sockets")?;
    }
    daemon.start(listener).map_err(|e| {
        anyhow!(
            "vhost-user frontend on {} failed to connect: {e}",
            socket.display()
        )
    })?;
    let result = daemon.wait();
    for handler in daemon.get_epoll_handlers() {
        handler.send_exit_event();
    }
    match result {
        Ok(()) => Ok(()),
        Err(DaemonError::HandleRequest(
            VhostUserError::Disconnected | VhostUserError::PartialMessage,
        )) => Ok(()),
        Err(e) => Err(anyhow!(
            "vhost-user session on {} failed: {e}",
            socket.display()
        )),
    }
}

struct Backend {
    device: VsockDevice,
    mem: Option<GuestMemoryAtomic<GuestMemoryMmap>>,
    exit: (EventConsumer, EventNotifier),
    lent_fds: Arc<Mutex<Vec<RawFd>>>,
}

impl Backend {
    fn new(device: VsockDevice, lent_fds: Arc<Mutex<Vec<RawFd>>>) -> Result<Backend> {
        let exit = new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
            .context("cannot create the worker exit eventfd")?;
        Ok(Backend {
            device,
            mem: None,
            exit,
            lent_fds,
        })
    }

    fn handle(&mut self, event: u16, vrings: &[VringRwLock]) -> Result<()> {
        // Host sockets are served even before the guest is up: the epoll fd is level-triggered
        // and would otherwise wake this thread in a loop, and host connects must time out.
        if event == HOST_EVENT {
            self.device.handle_host_events()?;
        }
        // Nothing can touch a queue before the frontend sent the memory table.
        let Some(atomic) = &self.mem else {
            return Ok(());
        };
        let mem = atomic.memory();
        let [rx, tx, _] = vrings else {
            bail!("expected {NUM_QUEUES} vrings, got {}", vrings.len());
        };
        match usize::from(event) {
            TX_QUEUE => with_queue(tx, |q| self.device.process_tx(&*mem, q))?,
            // RX: the guest added buffers. Event queue: we never send events.
            RX_QUEUE | EVENT_QUEUE => {}
            _ if event == HOST_EVENT => {}
            other => debug!("vsock: unexpected vhost-user event {other}"),
        }
        // Whatever happened may have made something due for the guest.
        with_queue(rx, |q| self.device.process_rx(&*mem, q))
    }
}

/// Runs `f` on the vring's queue if the frontend has started it, and notifies the guest if
/// `f` says so.
fn with_queue(
    vring: &VringRwLock,
    f: impl FnOnce(&mut Queue) -> Result<bool, DeviceError>,
) -> Result<()> {
    let mut state = vring.get_mut();
    if !state.is_enabled() || !state.get_queue().ready() {
        return Ok(());
    }
    if f(state.get_queue_mut())? {
        state
            .signal_used_queue()
            .context("cannot notify the guest")?;
    }
    Ok(())
}

impl VhostUserBackendMut for Backend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        // No INDIRECT_DESC: Linux would then allocate a table for every two-part TX packet.
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // QEMU reads the guest CID through GET_CONFIG.
        VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ
    }

    fn set_event_idx(&mut self, _enabled: bool) {
        // The queues track it themselves (vhost-user-backend sets it on each).
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let config = self.device.config_space();
        let start = offset as usize;
        let end = start.saturating_add(size as usize);
        // An empty answer is vhost-user's way of refusing an out-of-range read.
        config
            .get(start..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    fn update_memory(&mut self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> io::Result<()> {
        self.mem = Some(mem);
        Ok(())
    }

    fn reset_device(&mut self) {
        self.device.reset();
    }

    fn stop_vring(&mut self, queue_index: u32) -> io::Result<()> {
        // QEMU stops the rings when the guest resets or shuts down the device; its sockets are
        // gone then, so ours go too (once, on the RX ring).
        if queue_index as usize == RX_QUEUE {
            self.device.reset();
        }
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let consumer = self.exit.0.try_clone().ok()?;
        let notifier = self.exit.1.try_clone().ok()?;
        self.lent_fds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumer.as_raw_fd());
        Some((consumer, notifier))
    }

    fn handle_event(
        &mut self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        // An error here would stop the worker thread for good while QEMU carries on with a dead
        // device, so it is reported and the next event tried afresh.
        if let Err(e) = self.handle(device_event, vrings) {
            warn!("vsock: {e:#}");
        }
        Ok(())
    }
}
