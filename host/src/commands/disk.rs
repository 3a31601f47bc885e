//! `system prune` and `system df`: what the engine's data takes, and removing what is unused.

use anyhow::Result;
use serde_json::{json, Value};
use skiff_common::units::human_duration;

use super::api::{filters_json, query, status_of, Api, Body};
use super::containers::prune_containers;
use super::gofmt::{human_size, human_size3};
use super::ps::{row as container_row, truncate_id};
use super::term::confirm;
use super::Engine;
use crate::cli::{DfArgs, SystemPruneArgs};
use crate::output::{print_template, Format};
use crate::SkiffError;

/// docker's system prune confirmation (its template, written out).
pub fn prune_warning(a: &SystemPruneArgs) -> String {
    let mut warnings = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        warnings.push("all anonymous volumes not used by at least one container");
    }
    warnings.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    warnings.push(if a.all {
        "all build cache"
    } else {
        "unused build cache"
    });
    let mut out = String::from("WARNING! This will remove:");
    for w in warnings {
        out.push_str("\n  - ");
        out.push_str(w);
    }
    out.push('\n');
    let mut filters: Vec<&String> = a
        .filters
        .iter()
        .filter(|f| {
            let k = f.split_once('=').map(|(k, _)| k).unwrap_or(f);
            matches!(k, "label" | "label!" | "until")
        })
        .collect();
    filters.sort();
    if !filters.is_empty() {
        out.push_str("\n  Items to be pruned will be filtered with:");
        for f in filters {
            out.push_str("\n  - ");
            out.push_str(f);
        }
        out.push('\n');
    }
    out.push_str("\nAre you sure you want to continue?");
    out
}

/// A prune endpoint our engine may not have (networks, build cache): a 404 is nothing to
/// prune.
async fn optional_prune(api: &Api, target: &str) -> Result<Option<Value>> {
    match api.json("POST", target, Body::None).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if status_of(&e) == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /volumes/prune` with these filters: (space reclaimed, what to print), as docker's
/// volume prune counts them (the space only when something was deleted). `volume prune`
/// and `system prune --volumes` both report through it.
pub(super) async fn prune_volumes(api: &Api, filters: Option<String>) -> Result<(u64, String)> {
    let q = filters
        .map(|f| query(&[("filters", f)]))
        .unwrap_or_default();
    let v = api
        .json("POST", &format!("/volumes/prune{q}"), Body::None)
        .await?;
    let out = listed(&v, "VolumesDeleted", "Deleted Volumes:");
    let space = if out.is_empty() {
        0
    } else {
        v["SpaceReclaimed"].as_u64().unwrap_or(0)
    };
    Ok((space, out))
}

pub(super) fn listed(v: &Value, key: &str, title: &str) -> String {
    let mut out = String::new();
    if let Some(items) = v[key].as_array().filter(|a| !a.is_empty()) {
        out.push_str(title);
        out.push('\n');
        for i in items.iter().filter_map(Value::as_str) {
            out.push_str(i);
            out.push('\n');
        }
    }
    out
}

pub async fn system_prune(engine: &Engine, a: &SystemPruneArgs) -> Result<u8> {
    if a.volumes && a.filters.iter().any(|f| f.starts_with("until=")) {
        return Err(SkiffError::daemon(
            "ERROR: The \"until\" filter is not supported with \"--volumes\"",
        )
        .into());
    }
    if !a.force && !confirm(&prune_warning(a))? {
        return Ok(0);
    }
    let api = engine.api();
    let filters = filters_json(&a.filters)?;
    let filter_q = match &filters {
        Some(f) => query(&[("filters", f.clone())]),
        None => String::new(),
    };
    let mut total: u64 = 0;

    let (space, out) = prune_containers(&api, &a.filters).await?;
    total += space;
    if !out.is_empty() {
        crate::output::out_line!("{out}");
    }

    if let Some(v) = optional_prune(&api, &format!("/networks/prune{filter_q}")).await? {
        let out = listed(&v, "NetworksDeleted", "Deleted Networks:");
        if !out.is_empty() {
            crate::output::out_line!("{out}");
        }
    }

    if a.volumes {
        let (space, out) = prune_volumes(&api, filters).await?;
        total += space;
        if !out.is_empty() {
            crate::output::out_line!("{out}");
        }
    }

    let mut image_filters = a.filters.clone();
    image_filters.push(format!("dangling={}", !a.all));
    let image_q = match filters_json(&image_filters)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let v = api
        .json("POST", &format!("/images/prune{image_q}"), Body::None)
        .await?;
    if let Some(items) = v["ImagesDeleted"].as_array().filter(|a| !a.is_empty()) {
        let mut out = String::from("Deleted Images:\n");
        for i in items {
            match i["Untagged"].as_str().filter(|s| !s.is_empty()) {
                Some(u) => out.push_str(&format!("untagged: {u}\n")),
                None => out.push_str(&format!(
                    "deleted: {}\n",
                    i["Deleted"].as_str().unwrap_or_default()
                )),
            }
        }
        total += v["SpaceReclaimed"].as_u64().unwrap_or(0);
        crate::output::out_line!("{out}");
    }

    let mut build_q = vec![("filters", filters_json(&a.filters)?.unwrap_or_default())];
    if a.all {
        build_q.push(("all", "1".to_string()));
    }
    if let Some(v) = optional_prune(&api, &format!("/build/prune{}", query(&build_q))).await? {
        let out = listed(&v, "CachesDeleted", "Deleted build cache objects:");
        total += v["SpaceReclaimed"].as_u64().unwrap_or(0);
        if !out.is_empty() {
            crate::output::out_line!("{out}");
        }
    }

    crate::output::out_line!("Total reclaimed space: {}", human_size(total as f64));
    Ok(0)
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn with_percent(reclaimable: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            reclaimable * 100 / total
        )
    } else {
        human_size(reclaimable as f64)
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The four summary rows of `system df`.
pub fn df_rows(du: &Value) -> Vec<Value> {
    let images = arr(&du["Images"]);
    let layers = i(&du["LayersSize"]);
    let used: i64 = images
        .iter()
        .filter(|img| i(&img["Containers"]) != 0)
        .filter(|img| i(&img["Size"]) != -1 && i(&img["SharedSize"]) != -1)
        .map(|img| i(&img["Size"]) - i(&img["SharedSize"]))
        .sum();
    let images_row = json!({
        "Type": "Images",
        "TotalCount": images.len().to_string(),
        "Active": images.iter().filter(|img| i(&img["Containers"]) > 0).count().to_string(),
        "Size": human_size(layers as f64),
        "Reclaimable": with_percent(layers - used, layers),
    });

    let containers = arr(&du["Containers"]);
    let active = |c: &Value| {
        matches!(
            c["State"].as_str(),
            Some("running" | "paused" | "restarting")
        )
    };
    let c_total: i64 = containers.iter().map(|c| i(&c["SizeRw"])).sum();
    let c_reclaim: i64 = containers
        .iter()
        .filter(|c| !active(c))
        .map(|c| i(&c["SizeRw"]))
        .sum();
    let containers_row = json!({
        "Type": "Containers",
        "TotalCount": containers.len().to_string(),
        "Active": containers.iter().filter(|c| active(c)).count().to_string(),
        "Size": human_size(c_total as f64),
        "Reclaimable": with_percent(c_reclaim, c_total),
    });

    let volumes = arr(&du["Volumes"]);
    let v_size = |v: &Value| i(&v["UsageData"]["Size"]);
    let v_total: i64 = volumes.iter().map(v_size).filter(|s| *s != -1).sum();
    let v_reclaim: i64 = volumes
        .iter()
        .filter(|v| v_size(v) != -1 && i(&v["UsageData"]["RefCount"]) == 0)
        .map(v_size)
        .sum();
    let volumes_row = json!({
        "Type": "Local Volumes",
        "TotalCount": volumes.len().to_string(),
        "Active": volumes.iter().filter(|v| i(&v["UsageData"]["RefCount"]) > 0).count().to_string(),
        "Size": human_size(v_total as f64),
        "Reclaimable": with_percent(v_reclaim, v_total),
    });

    let cache = arr(&du["BuildCache"]);
    let flag = |c: &Value, k: &str| c[k].as_bool().unwrap_or(false);
    let builder: i64 = cache
        .iter()
        .filter(|c| !flag(c, "Shared"))
        .map(|c| i(&c["Size"]))
        .sum();
    let in_use: i64 = cache
        .iter()
        .filter(|c| flag(c, "InUse") && !flag(c, "Shared"))
        .map(|c| i(&c["Size"]))
        .sum();
    let cache_row = json!({
        "Type": "Build Cache",
        "TotalCount": cache.len().to_string(),
        "Active": cache.iter().filter(|c| flag(c, "InUse")).count().to_string(),
        "Size": human_size(builder as f64),
        "Reclaimable": human_size((builder - in_use) as f64),
    });
    vec![images_row, containers_row, volumes_row, cache_row]
}

fn df_header(field: &str) -> String {
    match field {
        "Type" => "TYPE",
        "TotalCount" => "TOTAL",
        "Active" => "ACTIVE",
        "Size" => "SIZE",
        "Reclaimable" => "RECLAIMABLE",
        "Repository" => "REPOSITORY",
        "Tag" => "TAG",
        "ID" => "IMAGE ID",
        "CreatedSince" => "CREATED",
        "SharedSize" => "SHARED SIZE",
        "UniqueSize" => "UNIQUE SIZE",
        "Containers" => "CONTAINERS",
        "Name" => "VOLUME NAME",
        "Links" => "LINKS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

fn ago(now: i64, t: i64) -> String {
    format!("{} ago", human_duration(now - t))
}

/// A volume's row of `system df -v`, docker's volumeContext: no usage data is "N/A", else
/// the engine's numbers as they are (an unknown size of -1 shows as "-1B", as in docker).
fn volume_usage_row(v: &Value) -> Value {
    let usage = v.get("UsageData").filter(|u| u.is_object());
    json!({
        "Name": v["Name"].as_str().unwrap_or(""),
        "Links": usage.map_or("N/A".into(), |u| i(&u["RefCount"]).to_string()),
        "Size": usage.map_or("N/A".into(), |u| human_size(i(&u["Size"]) as f64)),
    })
}

fn verbose(du: &Value) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    let na_or = |v: i64, f: &dyn Fn(i64) -> String| if v == -1 { "N/A".to_string() } else { f(v) };
    let images: Vec<Value> = arr(&du["Images"])
        .iter()
        .map(|img| {
            let tags = arr(&img["RepoTags"]);
            let (repo, tag) = tags
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "<none>:<none>")
                .map(|t| {
                    let (r, tg) = super::pull::split_reference(t);
                    let r = r
                        .strip_prefix("docker.io/library/")
                        .or_else(|| r.strip_prefix("docker.io/"))
                        .map(String::from)
                        .unwrap_or(r);
                    (r, tg.unwrap_or_else(|| "<none>".into()))
                })
                .unwrap_or_else(|| ("<none>".into(), "<none>".into()));
            let size = i(&img["Size"]);
            let shared = i(&img["SharedSize"]);
            json!({
                "Repository": repo,
                "Tag": tag,
                "ID": truncate_id(img["Id"].as_str().unwrap_or("")),
                "CreatedSince": ago(now, i(&img["Created"])),
                "Size": human_size3(size as f64),
                "SharedSize": na_or(shared, &|s| human_size3(s as f64)),
                "UniqueSize": if shared == -1 { "N/A".to_string() } else { human_size3((size - shared) as f64) },
                "Containers": na_or(i(&img["Containers"]), &|c| c.to_string()),
            })
        })
        .collect();
    crate::output::out_line!("Images space usage:\n");
    print_template(
        true,
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &df_header,
        &images,
    )
    .map_err(SkiffError::new)?;

    let containers: Vec<Value> = arr(&du["Containers"])
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["SizeRootFs"] = json!(0);
            container_row(&c, true, now)
        })
        .collect();
    crate::output::out_line!("\nContainers space usage:\n");
    print_template(
        true,
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &super::ps::header,
        &containers,
    )
    .map_err(SkiffError::new)?;

    let volumes: Vec<Value> = arr(&du["Volumes"]).iter().map(volume_usage_row).collect();
    crate::output::out_line!("\nLocal Volumes space usage:\n");
    print_template(
        true,
        "{{.Name}}\t{{.Links}}\t{{.Size}}",
        &df_header,
        &volumes,
    )
    .map_err(SkiffError::new)?;

    let cache = arr(&du["BuildCache"]);
    let builder: i64 = cache
        .iter()
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| i(&c["Size"]))
        .sum();
    crate::output::out_line!("\nBuild cache usage: {}\n", human_size(builder as f64));
    crate::output::out_line!(
        "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED"
    );
    Ok(())
}

pub async fn df(engine: &Engine, a: &DfArgs) -> Result<u8> {
    let du = engine.api().json("GET", "/system/df", Body::None).await?;
    if a.verbose && a.format.is_none() {
        verbose(&du)?;
        return Ok(0);
    }
    let rows = df_rows(&du);
    match Format::parse(a.format.as_deref()) {
        Format::Json => {
            for r in &rows {
                crate::output::outln(&serde_json::to_string(r)?);
            }
        }
        Format::Template { table, text } => {
            print_template(table, &text, &df_header, &rows).map_err(SkiffError::new)?
        }
        Format::Default => print_template(
            true,
            "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            &df_header,
            &rows,
        )
        .map_err(SkiffError::new)?,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(all: bool, volumes: bool, filters: &[&str]) -> SystemPruneArgs {
        SystemPruneArgs {
            all,
            volumes,
            force: false,
            filters: filters.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn prune_warning_like_docker() {
        assert_eq!(
            prune_warning(&args(false, false, &[])),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue?"
        );
        let w = prune_warning(&args(true, true, &["until=24h", "label=a"]));
        assert!(w.contains("  - all anonymous volumes not used by at least one container\n"));
        assert!(w.contains("  - all images without at least one container associated to them\n  - all build cache\n"));
        assert!(w.ends_with("\n\n  Items to be pruned will be filtered with:\n  - label=a\n  - until=24h\n\nAre you sure you want to continue?"));
    }

    #[test]
    fn df_volume_rows_like_docker() {
        assert_eq!(
            volume_usage_row(
                &json!({"Name": "v", "UsageData": {"Size": 1_984_469, "RefCount": 2}})
            ),
            json!({"Name": "v", "Links": "2", "Size": "1.984MB"})
        );
        assert_eq!(
            volume_usage_row(&json!({"Name": "v", "UsageData": {"Size": -1, "RefCount": -1}})),
            json!({"Name": "v", "Links": "-1", "Size": "-1B"})
        );
        assert_eq!(
            volume_usage_row(&json!({"Name": "v", "UsageData": null})),
            json!({"Name": "v", "Links": "N/A", "Size": "N/A"})
        );
        let du = json!({"Volumes": [
            {"Name": "a", "UsageData": {"Size": 1000, "RefCount": 1}},
            {"Name": "b", "UsageData": {"Size": 3000, "RefCount": 0}},
            {"Name": "c", "UsageData": {"Size": -1, "RefCount": 0}}
        ]});
        let rows = df_rows(&du);
        assert_eq!(rows[2]["Type"], "Local Volumes");
        assert_eq!(rows[2]["TotalCount"], "3");
        assert_eq!(rows[2]["Active"], "1");
        assert_eq!(rows[2]["Size"], "4kB");
        assert_eq!(rows[2]["Reclaimable"], "3kB (75%)");
    }

    #[test]
    fn df_summary_like_docker() {
        let du = json!({
            "LayersSize": 2_000_000,
            "Images": [
                {"Id": "sha256:aa", "Size": 1_500_000, "SharedSize": 500_000, "Containers": 1},
                {"Id": "sha256:bb", "Size": 500_000, "SharedSize": 0, "Containers": 0}
            ],
            "Containers": [
                {"State": "running", "SizeRw": 100},
                {"State": "exited", "SizeRw": 300}
            ],
            "Volumes": [],
            "BuildCache": []
        });
        let rows = df_rows(&du);
        assert_eq!(rows[0]["TotalCount"], "2");
        assert_eq!(rows[0]["Active"], "1");
        assert_eq!(rows[0]["Size"], "2MB");
        assert_eq!(rows[0]["Reclaimable"], "1MB (50%)");
        assert_eq!(rows[1]["Active"], "1");
        assert_eq!(rows[1]["Size"], "400B");
        assert_eq!(rows[1]["Reclaimable"], "300B (75%)");
        assert_eq!(rows[2]["Size"], "0B");
        assert_eq!(rows[3]["Reclaimable"], "0B");
    }
}
