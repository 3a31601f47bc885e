//! docker's option parsers for container flags: memory sizes, CPUs, restart policies, env
//! and label files, port specs, durations. Errors carry docker's own words.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::goerror::go_io_error;

/// pflag's words for a flag value its parser refused.
pub fn flag_error(value: &str, flag: &str, err: &str) -> String {
    format!("invalid argument \"{value}\" for \"{flag}\" flag: {err}")
}

/// docker's `ConvertKVStringsToMap` and map flags: `k=v`, or `k` alone for an empty value;
/// a later key wins.
pub fn kv_map(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// go-units' `RAMInBytes`: "32m", "1g", "512k", "1.5GiB", plain bytes; binary multiples.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let sep = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ');
    let Some(sep) = sep else {
        return Err(format!("invalid size: '{s}'"));
    };
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    let size: f64 = parse_go_float(num)?;
    if size < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    let bad = || format!("invalid suffix: '{sfx}'");
    if sfx.len() > 3 {
        return Err(bad());
    }
    let lower = sfx.to_ascii_lowercase();
    let b = lower.as_bytes();
    if b[0] == b'b' {
        if b.len() > 1 {
            return Err(bad());
        }
        return Ok(size as i64);
    }
    let mul: f64 = match b[0] {
        b'k' => 1024.0,
        b'm' => 1024.0 * 1024.0,
        b'g' => 1024.0 * 1024.0 * 1024.0,
        b't' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        b'p' => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &b[1..] != b"ib") {
        return Err(bad());
    }
    Ok((size * mul) as i64)
}

/// docker's `MemSwapBytes`: a size as `ram_in_bytes`, or -1 for unlimited swap.
pub fn mem_swap_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    ram_in_bytes(s)
}

/// The error Go's strconv.ParseFloat gives for text that is no number.
fn parse_go_float(num: &str) -> Result<f64, String> {
    let valid = !num.is_empty()
        && num
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && num.chars().any(|c| c.is_ascii_digit());
    let parsed = if valid { num.parse::<f64>().ok() } else { None };
    parsed.ok_or_else(|| format!("strconv.ParseFloat: parsing \"{num}\": invalid syntax"))
}

/// docker's `ParseCPUs`: a decimal (or a/b) number of CPUs as nano CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {s} as a rational number");
    let (num, den): (i128, i128) = if let Some((a, b)) = s.split_once('/') {
        let a: i128 = a.parse().map_err(|_| not_rational())?;
        let b: i128 = b.parse().map_err(|_| not_rational())?;
        if b == 0 {
            return Err(not_rational());
        }
        (a, b)
    } else {
        parse_decimal(s).ok_or_else(not_rational)?
    };
    let nano = num * 1_000_000_000;
    if nano % den != 0 {
        return Err("value is too precise".into());
    }
    i64::try_from(nano / den).map_err(|_| "value is too precise".to_string())
}

/// A decimal with optional sign, fraction and exponent as an exact fraction.
fn parse_decimal(s: &str) -> Option<(i128, i128)> {
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant.strip_prefix('+').unwrap_or(mant)),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mut num: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut den: i128 = 10i128.checked_pow(frac.len() as u32)?;
    if exp > 0 {
        num = num.checked_mul(10i128.checked_pow(exp as u32)?)?;
    } else if exp < 0 {
        den = den.checked_mul(10i128.checked_pow((-exp) as u32)?)?;
    }
    Some((if neg { -num } else { num }, den))
}

/// `--restart`: docker's client-side format check, then the engine's validation (so a bad
/// policy fails before anything is created).
pub fn parse_restart(policy: &str) -> Result<(String, i64), String> {
    if policy.is_empty() {
        return Ok((String::new(), 0));
    }
    let (name, count) = match policy.split_once(':') {
        Some(("", _)) => {
            return Err(
                "invalid restart policy format: no policy provided before colon".to_string(),
            )
        }
        Some((n, v)) => (n, v),
        None => (policy, ""),
    };
    let mut retries = 0i64;
    if !count.is_empty() {
        retries = count.parse().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_string()
        })?;
    }
    match name {
        "always" | "unless-stopped" | "no" => {
            if retries != 0 {
                let mut msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                if retries < 0 {
                    msg.push_str(" and cannot be negative");
                }
                return Err(msg);
            }
        }
        "on-failure" => {
            if retries < 0 {
                return Err(
                    "invalid restart policy: maximum retry count cannot be negative".into(),
                );
            }
        }
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ))
        }
    }
    Ok((name.to_string(), retries))
}

/// Where a bare `KEY` line of an env file finds its value.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// docker's kvfile format (env and label files): `KEY=VALUE` lines kept as they are,
/// `KEY` alone looked up with `lookup` (dropped if unknown), `#` comments, BOM removed.
pub fn parse_kv_lines(content: &[u8], lookup: Option<Lookup>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, raw) in content.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw)
            .map_err(|_| format!("invalid utf8 bytes at line {}: {:?}", i + 1, raw))?;
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        if has_value {
            out.push(line.to_string());
        } else if let Some(lookup) = lookup {
            if let Some(v) = lookup(line) {
                out.push(format!("{key}={v}"));
            }
        }
    }
    Ok(out)
}

/// Read an env or label file as docker does.
pub fn read_kv_file(path: &str, lookup: Option<Lookup>) -> Result<Vec<String>, String> {
    let content = std::fs::read(path).map_err(|e| format!("open {path}: {}", go_io_error(&e)))?;
    parse_kv_lines(&content, lookup).map_err(|e| format!("invalid env file ({path}): {e}"))
}

pub fn env_lookup(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// `-e`: docker's ValidateEnv (a bare `KEY` takes the value from our environment).
pub fn validate_env(val: &str) -> Result<String, String> {
    let (k, has_value) = match val.split_once('=') {
        Some((k, _)) => (k, true),
        None => (val, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {val}"));
    }
    if has_value {
        return Ok(val.to_string());
    }
    Ok(match env_lookup(k) {
        Some(v) => format!("{k}={v}"),
        None => val.to_string(),
    })
}

/// `-l`: docker's ValidateLabel.
pub fn validate_label(val: &str) -> Result<String, String> {
    let key = val.split_once('=').map(|(k, _)| k).unwrap_or(val);
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{val}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(val.to_string())
}

/// `-a`: stdin, stdout or stderr, any case.
pub fn validate_attach(val: &str) -> Result<String, String> {
    let s = val.to_ascii_lowercase();
    match s.as_str() {
        "stdin" | "stdout" | "stderr" => Ok(s),
        _ => Err("valid streams are STDIN, STDOUT and STDERR".into()),
    }
}

/// A host binding of a port: (host IP, host port).
pub type Binding = (String, String);

/// go-connections' ParsePortRange: "80" or "8000-8010".
fn parse_port_range(s: &str) -> Result<(u64, u64), String> {
    if s.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let parse = |p: &str| -> Result<u64, String> {
        p.parse::<u16>()
            .map(u64::from)
            .map_err(|_| format!("strconv.ParseUint: parsing \"{p}\": invalid syntax"))
    };
    match s.split_once('-') {
        None => {
            let p = parse(s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (start, end) = (parse(a)?, parse(b)?);
            if end < start {
                return Err(format!("invalid range specified for port: {s}"));
            }
            Ok((start, end))
        }
    }
}

fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp".into(), parts[0].to_string());
    }
    (parts[1].to_string(), parts[0].to_string())
}

/// go-connections' ParsePortSpecs for `-p`: exposed ports ("80/tcp") and their bindings.
#[allow(clippy::type_complexity)]
pub fn parse_port_specs(
    specs: &[String],
) -> Result<(BTreeMap<String, ()>, BTreeMap<String, Vec<Binding>>), String> {
    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<Binding>> = BTreeMap::new();
    for raw in specs {
        let raw = convert_publish_long_form(raw)?;
        let parts: Vec<&str> = raw.split(':').collect();
        let n = parts.len();
        let container = parts[n - 1];
        let (mut ip, host) = match n {
            1 => (String::new(), ""),
            2 => (String::new(), parts[0]),
            3 => (parts[0].to_string(), parts[1]),
            _ => (parts[..n - 2].join(":"), parts[n - 2]),
        };
        let (proto, cport) = split_proto_port(container);
        if ip.starts_with('[') {
            ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .map(String::from)
                .ok_or_else(|| format!("invalid IP address {ip}"))?;
        }
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("invalid IP address: {ip}"));
        }
        if cport.is_empty() {
            return Err(format!("no port specified: {raw}<empty>"));
        }
        let (start, end) =
            parse_port_range(&cport).map_err(|_| format!("invalid containerPort: {cport}"))?;
        let (mut hstart, mut hend) = (0, 0);
        if !host.is_empty() {
            (hstart, hend) =
                parse_port_range(host).map_err(|_| format!("invalid hostPort: {host}"))?;
        }
        if !host.is_empty() && (end - start) != (hend - hstart) && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {cport} and {host}"
            ));
        }
        let proto_l = proto.to_ascii_lowercase();
        if !matches!(proto_l.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("invalid proto: {proto}"));
        }
        for i in 0..=(end - start) {
            let port = format!("{}/{proto_l}", start + i);
            let mut hport = if host.is_empty() {
                String::new()
            } else {
                (hstart + i).to_string()
            };
            if start == end && hstart != hend {
                hport = format!("{hport}-{hend}");
            }
            exposed.insert(port.clone(), ());
            bindings.entry(port).or_default().push((ip.clone(), hport));
        }
    }
    Ok((exposed, bindings))
}

/// `-p published=8080,target=80,protocol=udp` into the short form.
fn convert_publish_long_form(p: &str) -> Result<String, String> {
    if !p.contains('=') {
        return Ok(p.to_string());
    }
    let mut params: BTreeMap<&str, &str> = BTreeMap::new();
    params.insert("protocol", "tcp");
    for param in p.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => {
                return Err(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                ))
            }
        }
    }
    let get = |k: &str| params.get(k).copied().unwrap_or("");
    Ok(format!(
        "{}:{}/{}",
        get("published"),
        get("target"),
        get("protocol")
    ))
}

/// `--expose 80`, `--expose 8000-8010/udp`.
pub fn parse_expose(e: &str) -> Result<Vec<String>, String> {
    if e.contains(':') {
        return Err(format!("invalid port format for --expose: {e}"));
    }
    let (proto, port) = split_proto_port(e);
    let (start, end) = parse_port_range(&port)
        .map_err(|err| format!("invalid range format for --expose: {e}, error: {err}"))?;
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Go's `net.ParseIP`: an IPv4-mapped IPv6 address is taken as the IPv4 address it maps, as
/// Go prints it that way.
pub fn go_parse_ip(s: &str) -> Option<IpAddr> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }),
        v4 => Some(v4),
    }
}

/// `--dns`: docker's ValidateIPAddress, which sends the address in canonical form.
pub fn validate_ip_address(val: &str) -> Result<String, String> {
    go_parse_ip(val.trim())
        .map(|ip| ip.to_string())
        .ok_or_else(|| format!("IP address is not correctly formatted: {val}"))
}

/// `--dns-search`: docker's ValidateDNSSearch ("." stands for the empty domain).
pub fn validate_dns_search(val: &str) -> Result<String, String> {
    let val = val.trim_matches(' ');
    if val == "." {
        return Ok(val.to_string());
    }
    validate_domain(val)
}

/// docker's validateDomain. Its pattern is
/// `^(:?(:?L)(:?\.(:?L))*)\.?\s*$` with `L` a hostname label; the `(:?` groups are a typo
/// for `(?:` upstream, which makes a colon before a label or a dot acceptable, so the same is
/// accepted here. The domain comes back without its trailing dot and blanks.
fn validate_domain(val: &str) -> Result<String, String> {
    let invalid = || format!("{val} is not a valid domain");
    if !val.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Err(invalid());
    }
    // RE2's \s: no vertical tab.
    let body = val.trim_end_matches(['\t', '\n', '\x0c', '\r', ' ']);
    let body = body.strip_suffix('.').unwrap_or(body);
    if body.len() < 255 && domain_body_matches(body.as_bytes()) {
        Ok(body.to_string())
    } else {
        Err(invalid())
    }
}

fn domain_body_matches(b: &[u8]) -> bool {
    // A label is a maximal run of alphanumerics and hyphens: what follows one is a colon, a
    // dot or the end, none of which a label may contain, so no backtracking is needed.
    let label = |i: &mut usize| -> bool {
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'-') {
            *i += 1;
        }
        let run = &b[start..*i];
        matches!((run.first(), run.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
    };
    let mut i = 0;
    if b.first() == Some(&b':') {
        i += 1;
    }
    if !label(&mut i) {
        return false;
    }
    while i < b.len() {
        if b[i] == b':' {
            i += 1;
        }
        if b.get(i) != Some(&b'.') {
            return false;
        }
        i += 1;
        if b.get(i) == Some(&b':') {
            i += 1;
        }
        if !label(&mut i) {
            return false;
        }
    }
    true
}

/// `--add-host`: docker's ValidateExtraHost. `host=ip`, `host:ip` and `host:[ipv6]` all
/// become the `host:ip` the engine understands; the address is checked but kept as written.
pub fn validate_extra_host(val: &str) -> Result<String, String> {
    let bad = || format!("bad format for add-host: {}", super::gofmt::quote(val));
    let (k, v) = val
        .split_once('=')
        .or_else(|| val.split_once(':'))
        .ok_or_else(bad)?;
    if k.is_empty() || k.contains(':') {
        return Err(bad());
    }
    let mut v = v;
    if v != "host-gateway" {
        if v.len() > 2 && v.starts_with('[') && v.ends_with(']') {
            v = &v[1..v.len() - 1];
        }
        if validate_ip_address(v).is_err() {
            return Err(format!(
                "invalid IP address in add-host: {}",
                super::gofmt::quote(v)
            ));
        }
    }
    Ok(format!("{k}:{v}"))
}

/// Go's `net.ParseCIDR`: the address as written and the prefix length, or Go's error.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u32), String> {
    let err = || format!("invalid CIDR address: {s}");
    let (addr, mask) = s.split_once('/').ok_or_else(err)?;
    let ip: IpAddr = addr.parse().map_err(|_| err())?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    if mask.is_empty() || !mask.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let prefix: u32 = mask.parse().map_err(|_| err())?;
    if prefix > bits {
        return Err(err());
    }
    Ok((ip, prefix))
}

/// Go's `net.IPNet.Contains` for a network from `parse_cidr`: an IPv4-mapped network
/// compares as IPv4, and families never match across.
pub fn cidr_contains(net: (IpAddr, u32), ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let (addr, prefix) = match net.0 {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), net.1.saturating_sub(96)),
            None => net,
        },
        v4 => (v4, net.1),
    };
    match (addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let mut rest = s;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mul: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{s}\""
                ))
            }
        };
        total += value * mul;
    }
    let n = total.round() as i128;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_like_rams_in_bytes() {
        assert_eq!(ram_in_bytes("32m"), Ok(32 << 20));
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("512k"), Ok(512 << 10));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("10b"), Ok(10));
        assert_eq!(ram_in_bytes("64MB"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1 m"), Ok(1 << 20));
        assert_eq!(ram_in_bytes("foo"), Err("invalid size: 'foo'".into()));
        assert_eq!(ram_in_bytes("32x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("32mbb"), Err("invalid suffix: 'mbb'".into()));
        assert_eq!(ram_in_bytes("-1"), Err("invalid size: '-1'".into()));
        assert!(ram_in_bytes("1.2.3m").is_err());
        assert_eq!(mem_swap_bytes("-1"), Ok(-1));
        assert_eq!(mem_swap_bytes("128m"), Ok(128 << 20));
        assert_eq!(mem_swap_bytes("-2"), Err("invalid size: '-2'".into()));
    }

    #[test]
    fn cpus_as_nano_cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.25"), Ok(250_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("1e-3"), Ok(1_000_000));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(
            parse_cpus("abc"),
            Err("failed to parse abc as a rational number".into())
        );
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("no"), Ok(("no".into(), 0)));
        assert_eq!(parse_restart("always"), Ok(("always".into(), 0)));
        assert_eq!(parse_restart("on-failure:3"), Ok(("on-failure".into(), 3)));
        assert_eq!(parse_restart("on-failure"), Ok(("on-failure".into(), 0)));
        assert_eq!(
            parse_restart("unless-stopped"),
            Ok(("unless-stopped".into(), 0))
        );
        assert!(parse_restart("sometimes")
            .unwrap_err()
            .starts_with("invalid restart policy: unknown policy 'sometimes'"));
        assert_eq!(
            parse_restart("always:3"),
            Err(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .into()
            )
        );
        assert_eq!(
            parse_restart("on-failure:x"),
            Err("invalid restart policy format: maximum retry count must be an integer".into())
        );
        assert_eq!(
            parse_restart(":3"),
            Err("invalid restart policy format: no policy provided before colon".into())
        );
        assert_eq!(
            parse_restart("on-failure:-1"),
            Err("invalid restart policy: maximum retry count cannot be negative".into())
        );
    }

    #[test]
    fn env_files_like_kvfile() {
        let lookup = |k: &str| (k == "HOME_X").then(|| "/root".to_string());
        let got = parse_kv_lines(
            b"\xef\xbb\xbfA=1\n# comment\n\n  B=two words \nHOME_X\nUNSET_Y\nC=\r\n",
            Some(&lookup),
        )
        .unwrap();
        assert_eq!(got, vec!["A=1", "B=two words ", "HOME_X=/root", "C="]);
        assert_eq!(
            parse_kv_lines(b"A B=1\n", None),
            Err("variable 'A B' contains whitespaces".into())
        );
        assert_eq!(
            parse_kv_lines(b"=1\n", None),
            Err("no variable name on line '=1'".into())
        );
        assert!(read_kv_file("/nonexistent/env", None)
            .unwrap_err()
            .starts_with("open /nonexistent/env: no such file or directory"));
    }

    #[test]
    fn env_and_labels_validate() {
        assert_eq!(validate_env("A=b"), Ok("A=b".into()));
        assert_eq!(
            validate_env("=b"),
            Err("invalid environment variable: =b".into())
        );
        assert_eq!(
            validate_env("SKIFF_SURELY_UNSET_VAR"),
            Ok("SKIFF_SURELY_UNSET_VAR".into())
        );
        assert!(validate_label("a b=c").is_err());
        assert!(validate_label("=c").is_err());
        assert_eq!(validate_attach("STDIN"), Ok("stdin".into()));
        assert!(validate_attach("stdall").is_err());
    }

    #[test]
    fn port_specs_like_nat() {
        let (exp, b) = parse_port_specs(&["127.0.0.1:8081:80".into()]).unwrap();
        assert!(exp.contains_key("80/tcp"));
        assert_eq!(b["80/tcp"], vec![("127.0.0.1".into(), "8081".into())]);
        let (_, b) = parse_port_specs(&["8080:80/udp".into(), "53".into()]).unwrap();
        assert_eq!(b["80/udp"], vec![("".into(), "8080".into())]);
        assert_eq!(b["53/tcp"], vec![("".into(), "".into())]);
        let (_, b) = parse_port_specs(&["8000-8001:9000-9001".into()]).unwrap();
        assert_eq!(b["9001/tcp"], vec![("".into(), "8001".into())]);
        let (_, b) = parse_port_specs(&["8000-8010:80".into()]).unwrap();
        assert_eq!(b["80/tcp"], vec![("".into(), "8000-8010".into())]);
        let (_, b) = parse_port_specs(&["[::1]:8080:80".into()]).unwrap();
        assert_eq!(b["80/tcp"], vec![("::1".into(), "8080".into())]);
        let (_, b) = parse_port_specs(&["published=8080,target=80".into()]).unwrap();
        assert_eq!(b["80/tcp"], vec![("".into(), "8080".into())]);
        assert_eq!(
            parse_port_specs(&["1.2.3:80:80".into()]),
            Err("invalid IP address: 1.2.3".into())
        );
        assert_eq!(
            parse_port_specs(&["80/xyz".into()]),
            Err("invalid proto: xyz".into())
        );
        assert_eq!(
            parse_port_specs(&["8080:abc".into()]),
            Err("invalid containerPort: abc".into())
        );
        assert_eq!(
            parse_expose("8000-8002/udp").unwrap(),
            vec!["8000/udp", "8001/udp", "8002/udp"]
        );
        assert!(parse_expose("80:80").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("10m"), Ok(600_000_000_000));
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(go_duration("300ms"), Ok(300_000_000));
        assert_eq!(go_duration("0"), Ok(0));
        assert_eq!(
            go_duration("1"),
            Err("time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert!(go_duration("abc").is_err());
        assert!(go_duration("").is_err());
    }
    #[test]
    fn dns_and_hosts_like_docker() {
        assert_eq!(validate_ip_address(" 8.8.8.8 "), Ok("8.8.8.8".into()));
        assert_eq!(
            validate_ip_address("2001:DB8:0:0::1"),
            Ok("2001:db8::1".into())
        );
        assert_eq!(validate_ip_address("::ffff:1.2.3.4"), Ok("1.2.3.4".into()));
        assert_eq!(
            validate_ip_address("8.8.8"),
            Err("IP address is not correctly formatted: 8.8.8".into())
        );
        assert_eq!(
            validate_dns_search(" example.com. "),
            Ok("example.com".into())
        );
        assert_eq!(validate_dns_search("."), Ok(".".into()));
        assert_eq!(validate_dns_search("a-b.c1"), Ok("a-b.c1".into()));
        assert_eq!(
            validate_dns_search("-bad.com"),
            Err("-bad.com is not a valid domain".into())
        );
        assert_eq!(
            validate_dns_search("123.456"),
            Err("123.456 is not a valid domain".into())
        );
        assert!(validate_dns_search("a..b").is_err());
        assert!(validate_dns_search(&format!("{}.com", "a".repeat(260))).is_err());
        assert_eq!(validate_extra_host("db:10.0.0.2"), Ok("db:10.0.0.2".into()));
        assert_eq!(validate_extra_host("db=::1"), Ok("db:::1".into()));
        assert_eq!(validate_extra_host("db:[::1]"), Ok("db:::1".into()));
        assert_eq!(
            validate_extra_host("gw:host-gateway"),
            Ok("gw:host-gateway".into())
        );
        assert_eq!(
            validate_extra_host("nohost"),
            Err("bad format for add-host: \"nohost\"".into())
        );
        assert_eq!(
            validate_extra_host(":1.2.3.4"),
            Err("bad format for add-host: \":1.2.3.4\"".into())
        );
        assert_eq!(
            validate_extra_host("db:1.2.3"),
            Err("invalid IP address in add-host: \"1.2.3\"".into())
        );
    }

    #[test]
    fn cidrs_like_go_net() {
        let n = parse_cidr("172.30.0.0/16").unwrap();
        assert!(cidr_contains(n, "172.30.5.1".parse().unwrap()));
        assert!(!cidr_contains(n, "172.31.0.1".parse().unwrap()));
        assert!(!cidr_contains(n, "::1".parse().unwrap()));
        let n6 = parse_cidr("2001:db8::/64").unwrap();
        assert!(cidr_contains(n6, "2001:db8::33".parse().unwrap()));
        assert!(!cidr_contains(n6, "10.0.0.1".parse().unwrap()));
        assert!(cidr_contains(
            parse_cidr("0.0.0.0/0").unwrap(),
            "9.9.9.9".parse().unwrap()
        ));
        assert_eq!(
            parse_cidr("172.30.0.0"),
            Err("invalid CIDR address: 172.30.0.0".into())
        );
        assert!(parse_cidr("172.30.0.0/33").is_err());
        assert!(parse_cidr("172.30.0.0/+8").is_err());
        assert!(parse_cidr("x/8").is_err());
    }
}
