//! Container names: docker's validity rule and generated `adjective_noun` names.

/// docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two characters), optional "/".
pub fn valid(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    let rest: Vec<char> = chars.collect();
    !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

// Our own short lists: boats and weather, for a tool named skiff.
const ADJECTIVES: &[&str] = &[
    "brisk", "calm", "daring", "eager", "fair", "gentle", "hardy", "keen", "lively", "mellow",
    "nimble", "quiet", "rapid", "steady", "swift", "tidy", "vivid", "windy", "bold", "sunny",
];
const NOUNS: &[&str] = &[
    "anchor", "bow", "canoe", "dinghy", "ferry", "galley", "harbor", "jetty", "keel", "lagoon",
    "mast", "oar", "pier", "raft", "sail", "schooner", "tide", "wake", "yawl", "buoy",
];

/// A fresh name not taken by `taken`; a numeric suffix when the plain pairs run out.
pub fn generate(seed: u64, taken: impl Fn(&str) -> bool) -> String {
    let mut x = seed | 1;
    for attempt in 0u32.. {
        // xorshift: cheap and good enough to spread names.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = ADJECTIVES[(x % ADJECTIVES.len() as u64) as usize];
        let n = NOUNS[((x >> 32) % NOUNS.len() as u64) as usize];
        let name = if attempt < 20 {
            format!("{a}_{n}")
        } else {
            format!("{a}_{n}{}", x % 1000)
        };
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("u32 attempts exhausted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_name_rule() {
        assert!(valid("web"));
        assert!(valid("/web-1.a_b"));
        assert!(!valid("x"));
        assert!(!valid("-x"));
        assert!(!valid("a b"));
        assert!(!valid(""));
    }

    #[test]
    fn generated_names_avoid_taken_ones() {
        let first = generate(42, |_| false);
        let second = generate(42, |n| n == first);
        assert_ne!(first, second);
        assert!(valid(&second));
    }
}
