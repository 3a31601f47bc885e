//! Random identifiers (container, exec, network and engine IDs, the VM's boot token).
//!
//! One source for all of them, and it fails loudly: an ID made from a clock when the kernel's
//! pool cannot be read would collide or be guessed, and an all-zero one would collide at once.

use std::io::{self, Read};

/// `bytes` random bytes from the kernel's pool, written as lowercase hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| io::Error::new(e.kind(), format!("reading /dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_asked_length_and_differ() {
        let a = random_hex(32).unwrap();
        let b = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_ne!(a, "0".repeat(64));
    }
}
