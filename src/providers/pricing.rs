//! Cost of a completion in USD: a built-in price table for common models, overridable per model
//! in the config (`[prices."MODEL"]`). Models match by the longest name prefix, so dated
//! snapshots (`gpt-4o-mini-2024-07-18`) price like their family. Unknown models cost 0.
//!
//! Prompt tokens read from or written to the provider's prompt cache have their own rates
//! ([`Usage`] counts them apart from `input`); reasoning tokens are part of `output` and priced
//! as output. A cache rate the config does not set is a ratio of the input rate: the built-in
//! model's published ratio when the model has one, else the provider kind's
//! ([`CacheRatios::of_kind`]).

use std::collections::BTreeMap;

use crate::config::{Price, ProviderKind};
use crate::model::Usage;

/// Cache rates as multiples of the input rate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CacheRatios {
    read: f64,
    write: f64,
}

/// Anthropic: cache reads at a tenth of the input rate, cache writes (the default 5-minute
/// cache) at 1.25 times it.
const ANTHROPIC: CacheRatios = CacheRatios {
    read: 0.1,
    write: 1.25,
};
/// OpenAI's usual discount: cached input at half the input rate. OpenAI charges nothing extra
/// for writing its cache (and reports no writes): a write an OpenAI-kind server reports is
/// priced as input.
const OPENAI_HALF: CacheRatios = CacheRatios {
    read: 0.5,
    write: 1.0,
};
/// OpenAI's gpt-4.1 family, o3 and o4-mini: cached input at a quarter of the input rate.
const OPENAI_QUARTER: CacheRatios = CacheRatios {
    read: 0.25,
    write: 1.0,
};
/// OpenAI's gpt-5 family: cached input at a tenth of the input rate.
const OPENAI_TENTH: CacheRatios = CacheRatios {
    read: 0.1,
    write: 1.0,
};

impl CacheRatios {
    /// The ratios of a model the built-in table does not know, by who serves it.
    fn of_kind(kind: ProviderKind) -> CacheRatios {
        match kind {
            ProviderKind::Anthropic => ANTHROPIC,
            ProviderKind::OpenAi => OPENAI_HALF,
        }
    }
}

/// Built-in list prices: USD per million input / output tokens, and the cache ratios.
const BUILTIN: &[(&str, f64, f64, CacheRatios)] = &[
    ("gpt-5", 1.25, 10.0, OPENAI_TENTH),
    ("gpt-5-mini", 0.25, 2.0, OPENAI_TENTH),
    ("gpt-5-nano", 0.05, 0.40, OPENAI_TENTH),
    ("gpt-4.1", 2.0, 8.0, OPENAI_QUARTER),
    ("gpt-4.1-mini", 0.40, 1.60, OPENAI_QUARTER),
    ("gpt-4.1-nano", 0.10, 0.40, OPENAI_QUARTER),
    ("gpt-4o", 2.50, 10.0, OPENAI_HALF),
    ("gpt-4o-mini", 0.15, 0.60, OPENAI_HALF),
    ("gpt-4-turbo", 10.0, 30.0, OPENAI_HALF),
    ("gpt-4", 30.0, 60.0, OPENAI_HALF),
    ("gpt-3.5-turbo", 0.50, 1.50, OPENAI_HALF),
    ("o1", 15.0, 60.0, OPENAI_HALF),
    ("o1-mini", 1.10, 4.40, OPENAI_HALF),
    ("o3", 2.0, 8.0, OPENAI_QUARTER),
    ("o3-mini", 1.10, 4.40, OPENAI_HALF),
    ("o4-mini", 1.10, 4.40, OPENAI_QUARTER),
    ("claude-opus-4", 15.0, 75.0, ANTHROPIC),
    ("claude-sonnet-4", 3.0, 15.0, ANTHROPIC),
    ("claude-haiku-4-5", 1.0, 5.0, ANTHROPIC),
    ("claude-3-7-sonnet", 3.0, 15.0, ANTHROPIC),
    ("claude-3-5-sonnet", 3.0, 15.0, ANTHROPIC),
    ("claude-3-5-haiku", 0.80, 4.0, ANTHROPIC),
    ("claude-3-opus", 15.0, 75.0, ANTHROPIC),
    ("claude-3-haiku", 0.25, 1.25, ANTHROPIC),
];

/// The built-in row of `model`, by longest prefix.
fn builtin(model: &str) -> Option<&'static (&'static str, f64, f64, CacheRatios)> {
    BUILTIN
        .iter()
        .filter(|(name, ..)| model.starts_with(name))
        .max_by_key(|(name, ..)| name.len())
}

/// Built-in prices plus the config's overrides.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn new(overrides: BTreeMap<String, Price>) -> Self {
        PriceTable { overrides }
    }

    /// The price of `model`: an override by longest prefix, else a built-in by longest prefix
    /// (with its cache rates).
    pub fn price(&self, model: &str) -> Option<Price> {
        let from_overrides = self
            .overrides
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p);
        from_overrides.or_else(|| {
            builtin(model).map(|&(_, input, output, cache)| Price {
                input_per_mtok: input,
                output_per_mtok: output,
                cache_read_per_mtok: Some(input * cache.read),
                cache_write_per_mtok: Some(input * cache.write),
            })
        })
    }

    /// USD for `usage` of `model` served by a provider of `kind` (0 when the model is unknown).
    pub fn cost(&self, model: &str, kind: ProviderKind, usage: &Usage) -> f64 {
        self.cost_of_either(model, model, kind, usage)
    }

    /// The cost of `usage` at the price of `model`, else (when it has none) of `fallback`: the
    /// model the provider says answered (a dated snapshot), else the one asked for. One
    /// look-up of the built-in table per name (it is on every answer's path).
    pub fn cost_of_either(
        &self,
        model: &str,
        fallback: &str,
        kind: ProviderKind,
        usage: &Usage,
    ) -> f64 {
        let priced = |model: &str| {
            let row = builtin(model);
            let over = self
                .overrides
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, p)| *p);
            let ratios = row.map_or(CacheRatios::of_kind(kind), |row| row.3);
            let price = over.or_else(|| {
                row.map(|&(_, input, output, cache)| Price {
                    input_per_mtok: input,
                    output_per_mtok: output,
                    cache_read_per_mtok: Some(input * cache.read),
                    cache_write_per_mtok: Some(input * cache.write),
                })
            })?;
            Some((price, ratios))
        };
        let Some((p, ratios)) = priced(model).or_else(|| priced(fallback)) else {
            return 0.0;
        };
        let read = p
            .cache_read_per_mtok
            .unwrap_or(p.input_per_mtok * ratios.read);
        let write = p
            .cache_write_per_mtok
            .unwrap_or(p.input_per_mtok * ratios.write);
        (usage.input as f64 * p.input_per_mtok
            + usage.output as f64 * p.output_per_mtok
            + usage.cache_read as f64 * read
            + usage.cache_write as f64 * write)
            / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, output: u64) -> Usage {
        Usage {
            input,
            output,
            ..Usage::default()
        }
    }

    fn close(cost: f64, expected: f64) {
        assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
    }

    fn price(input: f64, output: f64) -> Price {
        Price {
            input_per_mtok: input,
            output_per_mtok: output,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let table = PriceTable::default();
        assert_eq!(
            table
                .price("gpt-4o-mini-2024-07-18")
                .map(|p| p.input_per_mtok),
            Some(0.15)
        );
        assert_eq!(
            table.price("gpt-4o-2024-08-06").map(|p| p.input_per_mtok),
            Some(2.50)
        );
        assert_eq!(
            table.price("gpt-4-0613").map(|p| p.input_per_mtok),
            Some(30.0)
        );
        assert_eq!(
            table
                .price("claude-3-5-sonnet-20241022")
                .map(|p| p.output_per_mtok),
            Some(15.0)
        );
        assert!(table.price("llama3").is_none());
    }

    #[test]
    fn cost_and_overrides() {
        let table = PriceTable::default();
        let cost = table.cost(
            "gpt-4o-mini",
            ProviderKind::OpenAi,
            &tokens(1_000_000, 1_000_000),
        );
        close(cost, 0.75);
        let unknown = table.cost("my-local-model", ProviderKind::OpenAi, &tokens(1000, 1000));
        assert_eq!(unknown, 0.0);
        let mut overrides = BTreeMap::new();
        overrides.insert("my-local".to_owned(), price(1.0, 2.0));
        let table = PriceTable::new(overrides);
        let cost = table.cost(
            "my-local-model",
            ProviderKind::OpenAi,
            &tokens(500_000, 250_000),
        );
        close(cost, 1.0);
    }

    #[test]
    fn cached_prompt_tokens_cost_their_own_rates() {
        let table = PriceTable::default();
        let usage = Usage {
            input: 1_000_000,
            output: 1_000_000,
            cache_read: 1_000_000,
            cache_write: 1_000_000,
            reasoning: 500_000,
        };
        // claude-sonnet-4: $3 in, $15 out; reads $0.30, writes $3.75; reasoning is output.
        let cost = table.cost("claude-sonnet-4-20250514", ProviderKind::Anthropic, &usage);
        close(cost, 3.0 + 15.0 + 0.30 + 3.75);
        // gpt-4o-mini: $0.15 in, $0.60 out, cached input at half; gpt-4.1 at a quarter.
        let read = Usage {
            input: 1_000_000,
            cache_read: 1_000_000,
            ..Usage::default()
        };
        close(
            table.cost("gpt-4o-mini", ProviderKind::OpenAi, &read),
            0.225,
        );
        close(
            table.cost("gpt-4.1-2025-04-14", ProviderKind::OpenAi, &read),
            2.5,
        );
        // A built-in model's ratios hold whoever serves it.
        close(
            table.cost("claude-sonnet-4-5", ProviderKind::OpenAi, &read),
            3.3,
        );
    }

    #[test]
    fn configured_cache_rates_and_kind_defaults() {
        let mut overrides = BTreeMap::new();
        overrides.insert("local".to_owned(), price(2.0, 4.0));
        overrides.insert(
            "set".to_owned(),
            Price {
                cache_read_per_mtok: Some(0.5),
                cache_write_per_mtok: Some(3.0),
                ..price(2.0, 4.0)
            },
        );
        // An override of a built-in model keeps that model's ratios for what it leaves unset.
        overrides.insert("gpt-4.1".to_owned(), price(4.0, 8.0));
        let table = PriceTable::new(overrides);
        let cached = Usage {
            cache_read: 1_000_000,
            cache_write: 1_000_000,
            ..Usage::default()
        };
        close(
            table.cost("local-7b", ProviderKind::Anthropic, &cached),
            0.2 + 2.5,
        );
        close(
            table.cost("local-7b", ProviderKind::OpenAi, &cached),
            1.0 + 2.0,
        );
        close(
            table.cost("set-1", ProviderKind::Anthropic, &cached),
            0.5 + 3.0,
        );
        close(
            table.cost("gpt-4.1", ProviderKind::OpenAi, &cached),
            1.0 + 4.0,
        );
    }
}
