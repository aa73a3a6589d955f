//! `[servers.budget]` and `[servers.tools."op".budget]`: how much of a model's context a
//! server's tools may take. Unset values take the lean defaults, which keep every required
//! argument and trim what a model rarely needs (deep optional properties, most of the output
//! schema, long descriptions).

use serde::{Deserialize, Serialize};

/// Bounds of each value: a budget is a hint to the converter, never a way to blow memory up.
const MAX_TOKENS: u32 = 100_000;
const MAX_DESCRIPTION_CHARS: u32 = 16 * 1024;
const MAX_DEPTH: u32 = 32;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Referenced schemas stop being expanded once the input schema reaches about this many
    /// tokens. Default 4,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_schema_tokens: Option<u32>,
    /// The same for the output schema; 0 leaves it out. Default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_schema_tokens: Option<u32>,
    /// Optional properties of objects nested deeper than this are left out (the arguments are
    /// depth 0). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_depth: Option<u32>,
    /// Descriptions are cut to this many characters. Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_description_chars: Option<u32>,
}

/// A budget with every value set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub max_schema_tokens: u32,
    pub max_output_schema_tokens: u32,
    pub optional_depth: u32,
    pub max_description_chars: u32,
}

pub const LEAN: Resolved = Resolved {
    max_schema_tokens: 4000,
    max_output_schema_tokens: 500,
    optional_depth: 1,
    max_description_chars: 600,
};

impl Budget {
    pub fn is_empty(&self) -> bool {
        *self == Budget::default()
    }

    /// Why the budget cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let over = |value: Option<u32>, max: u32| value.is_some_and(|it| it > max);
        if over(self.max_schema_tokens, MAX_TOKENS) || over(self.max_output_schema_tokens, MAX_TOKENS) {
            return Some(format!("budget: schema tokens are at most {MAX_TOKENS}"));
        }
        if self.max_schema_tokens == Some(0) {
            return Some(
                "budget: max_schema_tokens must be at least 1 (the arguments are needed)".to_owned(),
            );
        }
        if over(self.optional_depth, MAX_DEPTH) {
            return Some(format!("budget: optional_depth is at most {MAX_DEPTH}"));
        }
        if over(self.max_description_chars, MAX_DESCRIPTION_CHARS) || self.max_description_chars == Some(0) {
            return Some(format!("budget: max_description_chars is 1 to {MAX_DESCRIPTION_CHARS}"));
        }
        None
    }

    /// This budget, its unset values taken from `under` (the server's, for a tool's).
    pub fn over(&self, under: &Budget) -> Budget {
        Budget {
            max_schema_tokens: self.max_schema_tokens.or(under.max_schema_tokens),
            max_output_schema_tokens: self.max_output_schema_tokens.or(under.max_output_schema_tokens),
            optional_depth: self.optional_depth.or(under.optional_depth),
            max_description_chars: self.max_description_chars.or(under.max_description_chars),
        }
    }

    /// Every value, the lean defaults filling those unset.
    pub fn resolved(&self) -> Resolved {
        Resolved {
            max_schema_tokens: self.max_schema_tokens.unwrap_or(LEAN.max_schema_tokens),
            max_output_schema_tokens: self.max_output_schema_tokens.unwrap_or(LEAN.max_output_schema_tokens),
            optional_depth: self.optional_depth.unwrap_or(LEAN.optional_depth),
            max_description_chars: self.max_description_chars.unwrap_or(LEAN.max_description_chars),
        }
    }
}
