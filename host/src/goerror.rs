//! Go's wording of OS errors. docker's messages carry it ("stat x: no such file or
//! directory"), and the tests and users' scripts match on it, so ours must too; Rust's own
//! wording ("No such file or directory (os error 2)") would read differently.

/// Go's wording of common I/O errors ("no such file or directory").
pub fn go_io_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a pointer to a static, NUL-terminated message.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) };
            msg.to_string_lossy().to_lowercase()
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_go_words_them() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(go_io_error(&e), "no such file or directory");
        let other = std::io::Error::other("the archive's owner is out of range");
        assert_eq!(go_io_error(&other), "the archive's owner is out of range");
    }
}
