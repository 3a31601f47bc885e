//! `inspect` (a container, an image or a network, whichever the name is) and
//! `container inspect`.

use anyhow::Result;

use super::api::{message_of, query, seg, status_of, Api, Body};
use super::inspected::print_inspected;
use super::Engine;
use crate::cli::{ContainerInspectArgs, ObjectInspectArgs};
use crate::SkiffError;

async fn get_raw(api: &Api, target: &str) -> Result<Vec<u8>> {
    let resp = api.call("GET", target, Body::None).await?;
    let mut body = resp.bytes().await?;
    while body.last().is_some_and(|b| b.is_ascii_whitespace()) {
        body.pop();
    }
    Ok(body)
}

fn container_target(name: &str, size: bool) -> String {
    let q = if size {
        query(&[("size", "1".to_string())])
    } else {
        String::new()
    };
    format!("/containers/{}/json{q}", seg(name))
}

pub async fn inspect_containers(engine: &Engine, a: &ContainerInspectArgs) -> Result<u8> {
    let api = engine.api();
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        match get_raw(&api, &container_target(n, a.size)).await {
            Ok(r) => raws.push(r),
            Err(e) => errors.push(message_of(&e)),
        }
    }
    print_inspected(&raws, a.format.as_deref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(u8::from(!errors.is_empty()))
}

/// `inspect`: a container first, then an image, a network, a volume (or only the `--type`
/// asked for).
pub async fn inspect_objects(engine: &Engine, a: &ObjectInspectArgs) -> Result<u8> {
    let kind = a.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image" | "network" | "volume") {
        return Err(SkiffError::new(format!("\"{kind}\" is not a valid value for --type")).into());
    }
    let api = engine.api();
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        let mut found = None;
        let mut error = None;
        if kind.is_empty() || kind == "container" {
            match get_raw(&api, &container_target(n, a.size)).await {
                Ok(r) => found = Some(r),
                Err(e) if kind.is_empty() && status_of(&e) == Some(404) => {}
                Err(e) => error = Some(message_of(&e)),
            }
        }
        if found.is_none() && error.is_none() && (kind.is_empty() || kind == "image") {
            match get_raw(&api, &format!("/images/{}/json", image_path(n))).await {
                Ok(r) => {
                    if a.size {
                        eprintln!("WARNING: --size ignored for image");
                    }
                    found = Some(r)
                }
                Err(e)
                    if kind.is_empty()
                        && (status_of(&e) == Some(404)
                            || message_of(&e).contains("invalid reference format")) => {}
                Err(e) => error = Some(message_of(&e)),
            }
        }
        if found.is_none() && error.is_none() && (kind.is_empty() || kind == "network") {
            match super::network::inspect_raw(&api, n, false).await? {
                Ok(r) => {
                    if a.size {
                        eprintln!("WARNING: --size ignored for network");
                    }
                    found = Some(r)
                }
                Err(e)
                    if kind.is_empty()
                        && (e.status == Some(404) || e.message.contains("not supported")) => {}
                Err(e) => error = Some(e.message),
            }
        }
        if found.is_none() && error.is_none() && (kind.is_empty() || kind == "volume") {
            match get_raw(&api, &format!("/volumes/{}", seg(n))).await {
                Ok(r) => found = Some(r),
                Err(e) if kind.is_empty() && status_of(&e) == Some(404) => {}
                Err(e) => error = Some(message_of(&e)),
            }
        }
        match (found, error) {
            (Some(r), _) => raws.push(r),
            (None, Some(e)) => errors.push(e),
            (None, None) => errors.push(format!("Error: No such object: {n}")),
        }
    }
    print_inspected(&raws, a.format.as_deref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(u8::from(!errors.is_empty()))
}

/// An image reference in a path keeps its slashes and colons (as the image commands send it).
fn image_path(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b':')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'@');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}
