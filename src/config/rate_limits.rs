//! `[servers.rate_limits]`: how often a hosted server's tools may be called, in calls per minute,
//! by one user (per tool) and by all users together (per tool). Tools that are not read-only
//! (`readOnlyHint` false: by default every method but GET, HEAD and OPTIONS) have lower defaults;
//! `tools` sets both rates of single tools.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::server::Bounded;

/// Calls per minute: at least 1, at most 1,000,000 (which is no limit in practice).
pub type CallsPerMinute = Bounded<1, 1_000_000>;

/// Tool names or operation keys a server's `rate_limits.tools` may name.
const MAX_TOOL_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Calls one user may make to one read-only tool.
    #[serde(default = "default_per_user")]
    pub per_user: CallsPerMinute,
    /// Calls one user may make to one tool that is not read-only.
    #[serde(default = "default_per_user_write")]
    pub per_user_write: CallsPerMinute,
    /// Calls all users together may make to one read-only tool.
    #[serde(default = "default_per_tool")]
    pub per_tool: CallsPerMinute,
    /// Calls all users together may make to one tool that is not read-only.
    #[serde(default = "default_per_tool_write")]
    pub per_tool_write: CallsPerMinute,
    /// Rates of single tools, by tool name, operationId or `METHOD /path`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolRateLimits>,
}

/// One tool's rates; those left out are the server's for the tool's kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<CallsPerMinute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_tool: Option<CallsPerMinute>,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            per_user: default_per_user(),
            per_user_write: default_per_user_write(),
            per_tool: default_per_tool(),
            per_tool_write: default_per_tool_write(),
            tools: BTreeMap::new(),
        }
    }
}

impl RateLimits {
    /// `(per user, per tool)` calls per minute of the tool known by `names` (its name, its
    /// operation's key, ...): the first name `tools` lists, else the server's rates for its kind.
    pub fn for_tool(&self, names: &[&str], read_only: bool) -> (u64, u64) {
        let configured = names.iter().find_map(|it| self.tools.get(*it)).cloned().unwrap_or_default();
        let (per_user, per_tool) = if read_only {
            (self.per_user, self.per_tool)
        } else {
            (self.per_user_write, self.per_tool_write)
        };
        (configured.per_user.unwrap_or(per_user).get(), configured.per_tool.unwrap_or(per_tool).get())
    }

    /// Why these limits cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.tools.len() > MAX_TOOL_ENTRIES {
            return Some(format!("rate_limits.tools names more than {MAX_TOOL_ENTRIES} tools"));
        }
        for (name, limits) in &self.tools {
            if name.trim().is_empty() || name.len() > 512 {
                return Some(format!("rate_limits.tools: `{name}` is not a tool name or operation"));
            }
            if limits.per_user.is_none() && limits.per_tool.is_none() {
                return Some(format!("rate_limits.tools.`{name}` sets neither per_user nor per_tool"));
            }
        }
        None
    }
}

fn default_per_user() -> CallsPerMinute {
    Bounded::const_new::<120>()
}

fn default_per_user_write() -> CallsPerMinute {
    Bounded::const_new::<30>()
}

fn default_per_tool() -> CallsPerMinute {
    Bounded::const_new::<6000>()
}

fn default_per_tool_write() -> CallsPerMinute {
    Bounded::const_new::<1200>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_that_are_not_read_only_get_the_lower_defaults() {
        let limits = RateLimits::default();
        assert_eq!(limits.for_tool(&["getPet"], true), (120, 6000));
        assert_eq!(limits.for_tool(&["addPet"], false), (30, 1200));
    }

    #[test]
    fn a_tool_is_found_by_any_of_its_names_and_keeps_the_rest() {
        let limits: RateLimits = toml::from_str(
            "per_user_write = 10\n[tools]\n'POST /pets' = { per_user = 2 }\nget_pet = { per_tool = 50 }",
        )
        .unwrap();
        assert_eq!(limits.for_tool(&["add_pet", "POST /pets"], false), (2, 1200));
        assert_eq!(limits.for_tool(&["get_pet", "getPet"], true), (120, 50));
        assert_eq!(limits.for_tool(&["other"], false), (10, 1200));
        assert_eq!(limits.problem(), None);
    }

    #[test]
    fn rates_are_bounded_and_entries_say_something() {
        assert!(toml::from_str::<RateLimits>("per_user = 0").is_err());
        assert!(toml::from_str::<RateLimits>("per_tool = 1000001").is_err());
        assert!(toml::from_str::<RateLimits>("per_users = 3").is_err(), "unknown keys are refused");
        let empty: RateLimits = toml::from_str("[tools]\ngetPet = {}").unwrap();
        assert!(empty.problem().unwrap().contains("neither"), "{:?}", empty.problem());
    }
}
