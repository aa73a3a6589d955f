//! Full-text search over a catalog's tools (catalog mode): BM25 over each tool's name, summary,
//! description, tags, path and parameter names, with field weights. Built once per publication,
//! when the OpenAPI model is still at hand; a query costs one pass over its terms' postings.
//!
//! Invariant: the index only ranks; what a caller may see is decided by the caller of
//! [`Index::search`] (its `visible` filter), so a hidden tool is never returned.

use std::collections::HashMap;

use crate::openapi::Operation;
use crate::tools::ToolSpec;

/// BM25's term-frequency saturation and length normalization (the usual values).
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Terms longer than this are not words (identifiers, base64): not indexed.
const MAX_TERM_CHARS: usize = 40;
/// Description text indexed per tool: the start says what it does; the rest is detail (and the
/// bulk of the memory).
const MAX_DESCRIPTION_CHARS: usize = 600;
/// What a query that says exactly what a summary says adds to its score.
const SUMMARY_BONUS: f32 = 6.0;
/// Terms of a query considered.
const MAX_QUERY_TERMS: usize = 32;

/// How much a term counts, by where it is found.
const NAME: u16 = 4;
const SUMMARY: u16 = 3;
const TAG: u16 = 2;
const PATH: u16 = 2;
const PARAMETER: u16 = 1;
const DESCRIPTION: u16 = 1;

#[derive(Default)]
pub struct Index {
    /// Term → (tool index, weighted frequency), in tool order.
    postings: HashMap<Box<str>, Vec<(u32, u16)>>,
    /// Weighted length of each tool's text.
    lengths: Vec<u32>,
    average_length: f32,
    /// Each tool's summary (else its description's first sentence) as distinct terms: a query
    /// that says what the summary says is that operation, over ones that merely mention it.
    summaries: Vec<Box<[Box<str>]>>,
}

impl Index {
    /// Indexes `tools`, each with the operation it was made from.
    pub fn build<'a>(tools: impl Iterator<Item = (&'a ToolSpec, &'a Operation)>) -> Index {
        let mut index = Index::default();
        let mut counts: HashMap<String, u16> = HashMap::new();
        for (idx, (tool, operation)) in tools.enumerate() {
            counts.clear();
            let mut add = |text: &str, weight: u16| {
                for term in terms(text) {
                    let count = counts.entry(term).or_default();
                    *count = count.saturating_add(weight);
                }
            };
            add(&tool.name, NAME);
            if let Some(summary) = &operation.summary {
                add(summary, SUMMARY);
            }
            if let Some(title) = &tool.title {
                add(title, SUMMARY);
            }
            for tag in &operation.tags {
                add(tag, TAG);
            }
            add(&operation.path, PATH);
            for name in
                tool.input_schema.get("properties").and_then(|it| it.as_object()).into_iter().flatten()
            {
                add(name.0, PARAMETER);
            }
            let description = operation.description.as_deref().unwrap_or(&tool.description);
            let summary = operation.summary.as_deref().unwrap_or_else(|| first_sentence(description));
            let mut summary: Vec<Box<str>> = terms(summary).map(String::into_boxed_str).collect();
            summary.sort();
            summary.dedup();
            index.summaries.push(summary.into_boxed_slice());
            let cut =
                description.char_indices().nth(MAX_DESCRIPTION_CHARS).map_or(description.len(), |it| it.0);
            add(&description[..cut], DESCRIPTION);
            let length: u32 = counts.values().map(|it| u32::from(*it)).sum();
            index.lengths.push(length);
            let idx = u32::try_from(idx).unwrap_or(u32::MAX);
            for (term, count) in counts.drain() {
                index.postings.entry(term.into_boxed_str()).or_default().push((idx, count));
            }
        }
        let total: u64 = index.lengths.iter().map(|it| u64::from(*it)).sum();
        index.average_length = total as f32 / index.lengths.len().max(1) as f32;
        index.postings.shrink_to_fit();
        index
    }

    /// How much the summary of tool `idx` and the query say the same thing: shared terms over
    /// all their terms (Jaccard).
    fn likeness(&self, idx: usize, query: &[String]) -> f32 {
        let Some(summary) = self.summaries.get(idx) else { return 0.0 };
        let shared = query.iter().filter(|it| summary.binary_search(&it.as_str().into()).is_ok()).count();
        let all = query.len() + summary.len() - shared;
        if all == 0 { 0.0 } else { shared as f32 / all as f32 }
    }

    /// The best `limit` tools for `query` among those `visible` accepts, best first.
    pub fn search(&self, query: &str, limit: usize, visible: impl Fn(usize) -> bool) -> Vec<usize> {
        let n = self.lengths.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        let mut query_terms: Vec<String> = terms(query).collect();
        query_terms.sort();
        query_terms.dedup();
        for term in query_terms.iter().take(MAX_QUERY_TERMS) {
            let Some(postings) = self.postings.get(term.as_str()) else { continue };
            let df = postings.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(idx, count) in postings {
                let tf = f32::from(count);
                let length = self.lengths.get(idx as usize).copied().unwrap_or(0) as f32;
                let norm = K1 * (1.0 - B + B * length / self.average_length.max(1.0));
                *scores.entry(idx).or_default() += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(u32, f32)> = scores
            .into_iter()
            .filter(|(idx, _)| visible(*idx as usize))
            .map(|(idx, score)| (idx, score + SUMMARY_BONUS * self.likeness(idx as usize, &query_terms)))
            .collect();
        // Ties go to document order, so the same query always gives the same answer.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(limit).map(|(idx, _)| idx as usize).collect()
    }
}

/// Lowercase words of `text`, with camelCase and snake_case split and a light stemming, so
/// that "listIssues", "list_issues" and "list issues" meet.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            // A capital after a lowercase letter starts a word (camelCase).
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        } else {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter(|it| it.chars().count() <= MAX_TERM_CHARS && !is_stop_word(it))
        .map(stem)
        .map(canonical)
}

/// The first sentence of a description, without markup: what the operation does.
fn first_sentence(description: &str) -> &str {
    let end = description.find(". ").or_else(|| description.find(".\n")).or_else(|| description.find("\n\n"));
    let sentence = &description[..end.unwrap_or(description.len())];
    sentence.char_indices().nth(200).map_or(sentence, |(cut, _)| &sentence[..cut])
}

/// One word for words of the same action, in documents and queries alike (after stemming).
fn canonical(term: String) -> String {
    let canonical = match term.as_str() {
        "add" | "new" | "open" | "mak" | "make" => "creat",
        "remov" | "eras" | "destroy" => "delet",
        "fetch" | "retriev" | "show" | "read" | "view" => "get",
        "edit" | "modify" | "chang" => "updat",
        "find" | "look" => "search",
        _ => return term,
    };
    canonical.to_owned()
}

/// Words that say nothing of which operation is meant.
fn is_stop_word(word: &str) -> bool {
    matches!(
        word,
        "a" | "an"
            | "the"
            | "of"
            | "to"
            | "for"
            | "in"
            | "on"
            | "and"
            | "or"
            | "by"
            | "with"
            | "from"
            | "is"
            | "be"
            | "this"
            | "that"
            | "it"
            | "its"
            | "my"
            | "me"
            | "i"
            | "at"
            | "as"
            | "all"
            | "can"
            | "you"
            | "your"
            | "are"
            | "was"
            | "will"
            | "which"
            | "api"
            | "p"
            | "br"
            | "code"
            | "object"
    )
}

/// Plural and verb endings, so that "repositories" finds "repository", "creating" and
/// "created" "create", and "listing" "list".
fn stem(word: String) -> String {
    let cut = |suffix: &str, keep: usize| word.len() > suffix.len() + keep && word.ends_with(suffix);
    let stemmed = if cut("ies", 2) {
        format!("{}y", &word[..word.len() - 3])
    } else if cut("sses", 1) {
        word[..word.len() - 2].to_owned()
    } else if cut("ing", 3) {
        word[..word.len() - 3].to_owned()
    } else if (cut("ed", 3) && !word.ends_with("eed"))
        || (cut("es", 3) && (word.ends_with("ches") || word.ends_with("shes") || word.ends_with("xes")))
    {
        word[..word.len() - 2].to_owned()
    } else if cut("s", 2) && !word.ends_with("ss") && !word.ends_with("us") {
        word[..word.len() - 1].to_owned()
    } else {
        word
    };
    // A final silent `e`, which the endings above take away ("create", "creat-ed").
    match stemmed.strip_suffix('e') {
        Some(stem) if stem.len() >= 3 => stem.to_owned(),
        _ => stemmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_cases_and_stem() {
        let it: Vec<String> = terms("listIssuesForRepo list_repositories, Creating the webhooks").collect();
        assert_eq!(it, ["list", "issu", "repo", "list", "repository", "creat", "webhook"]);
        let it: Vec<String> = terms("create created updates issue add new").collect();
        assert_eq!(it, ["creat", "creat", "updat", "issu", "creat", "creat"]);
        let it: Vec<String> = terms("GET /repos/{owner}/{repo}/pulls").collect();
        assert_eq!(it, ["get", "repo", "owner", "repo", "pull"]);
    }
}
