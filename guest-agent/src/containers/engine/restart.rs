//! Restart policies: after an exit, and when the agent starts again (finding its running
//! containers' shims, as docker does at daemon start).

use std::sync::Arc;

use bollard::models::RestartPolicyNameEnum as R;

use super::procfs::process_start_time;
use super::Containers;
use crate::containers::record::{Record, Status};

impl Containers {
    /// After an agent (re)start: find the shims of running containers again, record the exits
    /// that happened meanwhile, and apply restart policies as docker does at daemon start.
    pub async fn recover(self: &Arc<Self>) {
        for c in self.all() {
            let rec = c.record();
            if rec.state.status.is_live() || rec.state.status == Status::Restarting {
                if rec.state.shim_pid > 0
                    && process_start_time(rec.state.shim_pid as i32) == Some(rec.state.shim_start)
                {
                    if let Some(net) = &rec.net {
                        self.networks.adopt(&rec.id, &rec.name, net).await;
                    }
                    self.watch_shim(c.clone(), rec.state.shim_pid as i32);
                    // Its health as it was, checked again from now on.
                    self.watch_health(&c);
                } else {
                    // Recorded before the API answers, so that no client sees it running.
                    self.clone().on_exit(c, true).await;
                }
            } else if restart_on_boot(&rec) {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.start(&c).await {
                        tracing::warn!("restarting {}: {e}", c.id);
                    }
                });
            }
        }
        // Off the path to the API's first answer: under emulation in the VM its firewall
        // rewrite alone is about a tenth of a boot.
        let networks = self.networks.clone();
        tokio::spawn(async move { networks.sweep_stale().await });
    }
}

/// Whether a container that has just ended runs again. A user's stop holds back every policy;
/// `recovered` (its end found at the agent's start, not seen as it happened) lets only
/// `on-failure` look past it, to the exit code.
pub(super) fn should_restart(rec: &Record, recovered: bool) -> bool {
    let Some(p) = &rec.host_config.restart_policy else {
        return false;
    };
    if rec.state.stopped_by_user && !recovered {
        return false;
    }
    match p.name.unwrap_or(R::EMPTY) {
        R::ALWAYS => !rec.state.stopped_by_user,
        R::UNLESS_STOPPED => !rec.state.stopped_by_user,
        R::ON_FAILURE => {
            let max = p.maximum_retry_count.unwrap_or(0);
            rec.state.exit_code != 0 && (max == 0 || rec.restart_count < max)
        }
        _ => false,
    }
}

/// At agent start: `always` comes back even if it had been stopped by the agent going away;
/// `unless-stopped` only if the user had not stopped it.
fn restart_on_boot(rec: &Record) -> bool {
    if rec.state.status != Status::Exited || rec.state.stopped_by_user {
        return false;
    }
    matches!(
        rec.host_config.restart_policy.as_ref().and_then(|p| p.name),
        Some(R::ALWAYS) | Some(R::UNLESS_STOPPED)
    ) && rec.state.error.contains("supervisor ended")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::record::sample_record;
    use bollard::models::RestartPolicy;

    fn ended(policy: Option<R>, max: Option<i64>, exit_code: i64) -> Record {
        let mut r = sample_record();
        r.host_config.restart_policy = policy.map(|name| RestartPolicy {
            name: Some(name),
            maximum_retry_count: max,
        });
        r.state.status = Status::Exited;
        r.state.exit_code = exit_code;
        r
    }

    fn stopped(mut r: Record) -> Record {
        r.state.stopped_by_user = true;
        r
    }

    #[test]
    fn without_a_policy_or_with_no_it_stays_down() {
        for code in [0, 1, 137] {
            assert!(!should_restart(&ended(None, None, code), false));
            assert!(!should_restart(&ended(None, None, code), true));
            assert!(!should_restart(&ended(Some(R::NO), None, code), false));
            assert!(!should_restart(&ended(Some(R::EMPTY), None, code), false));
        }
    }

    #[test]
    fn always_and_unless_stopped_restart_on_any_exit_but_a_users_stop() {
        for p in [R::ALWAYS, R::UNLESS_STOPPED] {
            assert!(should_restart(&ended(Some(p), None, 0), false), "{p:?}");
            assert!(should_restart(&ended(Some(p), None, 3), false), "{p:?}");
            assert!(should_restart(&ended(Some(p), None, 0), true), "{p:?}");
            assert!(
                !should_restart(&stopped(ended(Some(p), None, 137)), false),
                "{p:?}"
            );
            assert!(
                !should_restart(&stopped(ended(Some(p), None, 137)), true),
                "{p:?}"
            );
        }
    }

    #[test]
    fn on_failure_restarts_only_a_failure_and_up_to_its_count() {
        let p = Some(R::ON_FAILURE);
        assert!(!should_restart(&ended(p, None, 0), false));
        assert!(should_restart(&ended(p, None, 1), false));
        // No count (or 0): without end.
        let mut r = ended(p, Some(0), 1);
        r.restart_count = 1000;
        assert!(should_restart(&r, false));
        let mut r = ended(p, Some(3), 1);
        r.restart_count = 2;
        assert!(should_restart(&r, false));
        r.restart_count = 3;
        assert!(!should_restart(&r, false));
    }

    #[test]
    fn a_users_stop_holds_on_failure_back_unless_found_at_the_agents_start() {
        let r = stopped(ended(Some(R::ON_FAILURE), None, 137));
        assert!(!should_restart(&r, false));
        assert!(should_restart(&r, true));
        let r = stopped(ended(Some(R::ON_FAILURE), None, 0));
        assert!(!should_restart(&r, true));
    }

    #[test]
    fn at_the_agents_start_always_and_unless_stopped_come_back_from_a_lost_supervisor() {
        let lost = |p| {
            let mut r = ended(Some(p), None, 255);
            r.state.error = "the container's supervisor ended unexpectedly".into();
            r
        };
        assert!(restart_on_boot(&lost(R::ALWAYS)));
        assert!(restart_on_boot(&lost(R::UNLESS_STOPPED)));
        assert!(!restart_on_boot(&lost(R::ON_FAILURE)));
        assert!(!restart_on_boot(&lost(R::NO)));
        assert!(!restart_on_boot(&stopped(lost(R::ALWAYS))));
        let mut created = lost(R::ALWAYS);
        created.state.status = Status::Created;
        assert!(!restart_on_boot(&created));
        // An ordinary exit was already handled when it happened.
        assert!(!restart_on_boot(&ended(Some(R::ALWAYS), None, 0)));
    }
}
