//! Packets in descriptor chains, whatever their layout.
//!
//! The spec lets a driver split a packet across descriptors any way it likes, and drivers do
//! differ: Linux before 6.1.63 used one descriptor for the header and one for the payload, later
//! ones put both in a single descriptor on RX, and nothing stops a driver from splitting the header
//! itself. virtio-queue's `Reader`/`Writer` treat a chain as one byte stream and check every
//! descriptor against guest memory when they are built, so this module never indexes guest memory
//! on its own. (virtio-vsock's `VsockPacket` was not used: it only accepts one- or two-descriptor
//! layouts and needs the header in one host-contiguous slice.)

use std::io::{self, Read, Write};
use std::ops::Deref;

use virtio_queue::{DescriptorChain, Reader, Writer};
use vm_memory::bitmap::{BitmapSlice, WithBitmapSlice};
use vm_memory::GuestMemory;

use super::proto::{Header, HEADER_SIZE, MAX_PAYLOAD};

/// Why a chain could not be used as a packet. Every one of these is the guest's doing.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("descriptor chain is malformed or points outside guest memory: {0}")]
    Chain(virtio_queue::Error),
    #[error("descriptor chain holds {0} bytes, fewer than a packet header")]
    ShortHeader(usize),
    #[error("header announces {claimed} payload bytes but the chain holds only {available}")]
    Truncated { claimed: u32, available: usize },
    #[error("header announces {0} payload bytes, more than the {MAX_PAYLOAD}-byte limit")]
    TooLong(u32),
    #[error("cannot copy the packet from guest memory: {0}")]
    Copy(io::Error),
}

/// A packet taken from the TX queue: the header copied out, the payload still in guest memory
/// and limited to exactly `hdr.len` bytes.
pub struct TxPacket<'a, B> {
    pub hdr: Header,
    pub payload: Reader<'a, B>,
}

impl<'a, B: BitmapSlice> TxPacket<'a, B> {
    pub fn parse<M, T>(mem: &'a M, chain: DescriptorChain<T>) -> Result<Self, PacketError>
    where
        M: GuestMemory,
        M::Bitmap: WithBitmapSlice<'a, S = B>,
        T: Deref,
        T::Target: GuestMemory + Sized,
    {
        let mut reader = Reader::new(mem, chain).map_err(PacketError::Chain)?;
        let available = reader.available_bytes();
        if available < HEADER_SIZE {
            return Err(PacketError::ShortHeader(available));
        }
        let mut raw = [0u8; HEADER_SIZE];
        reader.read_exact(&mut raw).map_err(PacketError::Copy)?;
        let hdr = Header::from_bytes(&raw);

        let len = hdr.len as usize;
        if len > MAX_PAYLOAD {
            return Err(PacketError::TooLong(hdr.len));
        }
        if reader.available_bytes() < len {
            return Err(PacketError::Truncated {
                claimed: hdr.len,
                available: reader.available_bytes(),
            });
        }
        // Whatever follows the announced payload is padding the guest may leave there.
        reader.split_at(len).map_err(PacketError::Chain)?;
        Ok(TxPacket {
            hdr,
            payload: reader,
        })
    }
}

/// A buffer taken from the RX queue, to be filled with one packet.
pub struct RxBuffer<'a, B> {
    header: Writer<'a, B>,
    payload: Writer<'a, B>,
}

impl<'a, B: BitmapSlice> RxBuffer<'a, B> {
    pub fn new<M, T>(mem: &'a M, chain: DescriptorChain<T>) -> Result<Self, PacketError>
    where
        M: GuestMemory,
        M::Bitmap: WithBitmapSlice<'a, S = B>,
        T: Deref,
        T::Target: GuestMemory + Sized,
    {
        let mut header = Writer::new(mem, chain).map_err(PacketError::Chain)?;
        let available = header.available_bytes();
        if available < HEADER_SIZE {
            return Err(PacketError::ShortHeader(available));
        }
        let payload = header.split_at(HEADER_SIZE).map_err(PacketError::Chain)?;
        Ok(RxBuffer { header, payload })
    }

    /// How many payload bytes still fit.
    pub fn payload_room(&self) -> usize {
        MAX_PAYLOAD
            .saturating_sub(self.payload.bytes_written())
            .min(self.payload.available_bytes())
    }

    pub fn write_payload(&mut self, data: &[u8]) -> io::Result<()> {
        self.payload.write_all(data)
    }

    /// Writes `hdr` with `len` set to the payload written, and returns the used length to
    /// report to the driver.
    pub fn finish(mut self, mut hdr: Header) -> io::Result<u32> {
        let len = self.payload.bytes_written();
        // `payload_room` keeps this under MAX_PAYLOAD, so it fits a u32.
        hdr.len = len as u32;
        self.header.write_all(&hdr.to_bytes())?;
        Ok((HEADER_SIZE + len) as u32)
    }
}
