//! The kinds of failure every domain of the engine reports, after moby's `errdefs`: a domain
//! error says what went wrong and which kind it is; only `api/errors.rs` turns a kind into a
//! status code. Containers, networks, images and the domains to come share these kinds, so a
//! new domain's error is one enum and a `domain_error!` line.

/// What kind of failure an error is: what the client did wrong, or what the engine did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No such object, or something the request names (an image, a network, a path) is missing.
    NotFound,
    /// The request itself is wrong: a bad option, value or combination.
    InvalidArgument,
    /// The request is valid but the object's state refuses it (running, name taken, in use).
    Conflict,
    /// skiff will not do this here (a port below 1024 in the VM, a refused privilege).
    Forbidden,
    /// Nothing to do: already started, already stopped.
    NotModified,
    /// A failure of the engine or the host.
    Internal,
}

/// A domain error that knows its kind.
pub trait Classify {
    fn kind(&self) -> Kind;
}

/// A domain error's constructors, one per kind (`not_found`, `invalid`, `conflict`,
/// `forbidden`, `internal`), and its `Classify` for the variants named after the kinds
/// (`NotFound(String)`, `InvalidArgument(String)`, `Conflict(String)`, `Forbidden(String)`,
/// `Internal(anyhow::Error)`); any other variant is given with its kind after the type:
/// `domain_error!(ContainerError, Self::Network(n) => n.kind())`. A macro rather than a
/// trait's default methods so that the constructors are inherent (no trait to import at every
/// call) and each domain keeps its own enum to `match` on.
#[macro_export]
macro_rules! domain_error {
    ($error:ty $(, $pat:pat => $kind:expr)* $(,)?) => {
        impl $error {
            pub fn not_found(m: impl Into<String>) -> Self {
                Self::NotFound(m.into())
            }
            pub fn invalid(m: impl Into<String>) -> Self {
                Self::InvalidArgument(m.into())
            }
            pub fn conflict(m: impl Into<String>) -> Self {
                Self::Conflict(m.into())
            }
            pub fn forbidden(m: impl Into<String>) -> Self {
                Self::Forbidden(m.into())
            }
            pub fn internal(m: impl std::fmt::Display) -> Self {
                Self::Internal(anyhow::anyhow!("{m}"))
            }
        }

        impl $crate::errdefs::Classify for $error {
            fn kind(&self) -> $crate::errdefs::Kind {
                #[allow(unused_imports)]
                use $crate::errdefs::{Classify as _, Kind};
                match self {
                    Self::NotFound(_) => Kind::NotFound,
                    Self::InvalidArgument(_) => Kind::InvalidArgument,
                    Self::Conflict(_) => Kind::Conflict,
                    Self::Forbidden(_) => Kind::Forbidden,
                    Self::Internal(_) => Kind::Internal,
                    $($pat => $kind,)*
                }
            }
        }
    };
}
