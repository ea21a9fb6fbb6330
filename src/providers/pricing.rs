//! Cost of a completion in USD: a built-in price table for common models, overridable per model
//! in the config (`[prices."MODEL"]`). Models match by the longest name prefix, so dated
//! snapshots (`gpt-4o-mini-2024-07-18`) price like their family. Unknown models cost 0.

use std::collections::BTreeMap;

use crate::config::Price;

/// Built-in list prices (USD per million input / output tokens).
const BUILTIN: &[(&str, f64, f64)] = &[
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4o", 2.50, 10.0),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4-turbo", 10.0, 30.0),
    ("gpt-4", 30.0, 60.0),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o1", 15.0, 60.0),
    ("o1-mini", 1.10, 4.40),
    ("o3", 2.0, 8.0),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-3-5-haiku", 0.80, 4.0),
    ("claude-3-opus", 15.0, 75.0),
    ("claude-3-haiku", 0.25, 1.25),
];

/// Built-in prices plus the config's overrides.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn new(overrides: BTreeMap<String, Price>) -> Self {
        PriceTable { overrides }
    }

    /// The price of `model`: an override by longest prefix, else a built-in by longest prefix.
    pub fn price(&self, model: &str) -> Option<Price> {
        let from_overrides = self
            .overrides
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p);
        from_overrides.or_else(|| {
            BUILTIN
                .iter()
                .filter(|(name, _, _)| model.starts_with(name))
                .max_by_key(|(name, _, _)| name.len())
                .map(|&(_, input, output)| Price {
                    input_per_mtok: input,
                    output_per_mtok: output,
                })
        })
    }

    /// USD for `input` prompt and `output` completion tokens of `model` (0 when unknown).
    pub fn cost(&self, model: &str, input: u64, output: u64) -> f64 {
        match self.price(model) {
            Some(p) => (input as f64 * p.input_per_mtok + output as f64 * p.output_per_mtok) / 1e6,
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let cost = table.cost("gpt-4o-mini", 1_000_000, 1_000_000);
        assert!((cost - 0.75).abs() < 1e-9, "{cost}");
        assert_eq!(table.cost("my-local-model", 1000, 1000), 0.0);
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "my-local".to_owned(),
            Price {
                input_per_mtok: 1.0,
                output_per_mtok: 2.0,
            },
        );
        let table = PriceTable::new(overrides);
        let cost = table.cost("my-local-model", 500_000, 250_000);
        assert!((cost - 1.0).abs() < 1e-9, "{cost}");
    }
}
