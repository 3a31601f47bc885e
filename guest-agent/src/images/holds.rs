//! What operations in progress rely on, so that a deletion racing them cannot pull it away:
//! a build's base and step images (a prune between two steps took the image the next step
//! starts from), and the layers a pull or a load found or stored before it records their
//! image (a `rmi` of the only other image using a layer took it from under the pull, which
//! then recorded an image without it).
//!
//! Kept in memory only: an agent that restarts has nothing in progress. A held image is not
//! deleted (`rmi` is refused, prune passes it by); a held layer outlives the image deletion
//! that would have taken it, and when its last hold goes and no image uses it, it is removed
//! then (so a load that fails leaves no layer behind).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The store a hold is taken in: where its counts are, and what to do with layers whose
/// last hold went (`Store` removes those no image uses).
pub trait HoldStore: Send + Sync {
    fn holds(&self) -> &Holds;
    fn released(&self, layers: &[String]);
}

#[derive(Default)]
pub struct Holds {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    images: HashMap<String, usize>,
    layers: HashMap<String, usize>,
}

impl Holds {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn image_held(&self, id: &str) -> bool {
        self.counts().images.contains_key(id)
    }

    /// Run `f` (a layer's removal) unless `diff_id` is held, with no hold taken meanwhile:
    /// an operation that holds a layer before it looks for it either finds it gone or keeps
    /// it.
    pub fn unless_layer_held<T>(&self, diff_id: &str, f: impl FnOnce() -> T) -> Option<T> {
        let counts = self.counts();
        (!counts.layers.contains_key(diff_id)).then(f)
    }
}

fn take(map: &mut HashMap<String, usize>, key: &str) -> bool {
    match map.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            map.remove(key);
            true
        }
        None => false,
    }
}

/// One operation's holds, released when it is dropped.
pub struct Hold {
    store: Arc<dyn HoldStore>,
    images: Vec<String>,
    layers: Vec<String>,
}

impl Hold {
    pub fn new<S: HoldStore + 'static>(store: &Arc<S>) -> Hold {
        Hold {
            store: store.clone(),
            images: Vec::new(),
            layers: Vec::new(),
        }
    }

    pub fn image(&mut self, id: &str) {
        self.add(Kind::Image, id);
    }

    pub fn layer(&mut self, diff_id: &str) {
        self.add(Kind::Layer, diff_id);
    }

    fn add(&mut self, kind: Kind, key: &str) {
        let mine = match kind {
            Kind::Image => &mut self.images,
            Kind::Layer => &mut self.layers,
        };
        if mine.iter().any(|k| k == key) {
            return;
        }
        mine.push(key.to_string());
        let mut counts = self.store.holds().counts();
        let map = match kind {
            Kind::Image => &mut counts.images,
            Kind::Layer => &mut counts.layers,
        };
        *map.entry(key.to_string()).or_default() += 1;
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Image,
    Layer,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let released: Vec<String> = {
            let mut c = self.store.holds().counts();
            for i in &self.images {
                take(&mut c.images, i);
            }
            self.layers
                .iter()
                .filter(|l| take(&mut c.layers, l))
                .cloned()
                .collect()
        };
        self.store.released(&released);
    }
}
