//! The compact architecture notation (`docs/network-notation.md`), e.g.
//! `28x28x1-16C3b-MP2-32C3i8-SP2-10C1i8-GAP`.
//!
//! Tokens are separated by `-`. The first token is the input (`HxWxC`, `HxW` for one channel,
//! or `N` for a `1×N×1` row); then layers and pooling; optionally `GAP` last. Every layer but
//! the last gets a LIF neuron; the last layer has none and feeds the GAP/argmax head.

use thiserror::Error;

use crate::ir::{Padding, Pool, Synapse};
use crate::validate::MAX_DIM;

/// Weight kind of an architecture layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightKind {
    /// ±1 (`b`).
    Binary,
    /// Signed integers of the given width (`i8`).
    Integer(u32),
}

/// One layer of an architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArchLayer {
    /// Synaptic operation.
    pub synapse: Synapse,
    /// Weight kind.
    pub weights: WeightKind,
    /// Whether the weight kind was written (`b`, `i4`) rather than defaulted; the trainer's
    /// accuracy-loss estimator decides the precision of layers that leave it open.
    pub weights_given: bool,
    /// Pooling after the neuron.
    pub pool: Option<Pool>,
}

/// A parsed architecture.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arch {
    /// Input height, width, channels.
    pub input: (u32, u32, u32),
    /// Layers in order.
    pub layers: Vec<ArchLayer>,
}

/// An architecture string that does not parse; the message points at the token.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("architecture `{arch}`, token {index} `{token}`: {reason}\n  {arch}\n  {caret}")]
pub struct ArchError {
    /// The whole string.
    pub arch: String,
    /// 1-based token index.
    pub index: usize,
    /// The token.
    pub token: String,
    /// What is wrong.
    pub reason: String,
    /// Spaces and carets under the token.
    pub caret: String,
}

const LAYER_HELP: &str = "expected a layer such as `16C3b`, `32C3s2i4`, `8C5v`, `128b`, `10i8`, \
     a pooling `MP2`/`SP2`/`AP2`, or `GAP` at the end";

fn parse_num(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

fn parse_weights(s: &str) -> Result<WeightKind, String> {
    match s {
        "" => Ok(WeightKind::Integer(8)),
        "b" => Ok(WeightKind::Binary),
        _ => match s.strip_prefix('i').and_then(parse_num) {
            Some((bits, "")) if (2..=16).contains(&bits) => Ok(WeightKind::Integer(bits)),
            Some((bits, "")) => Err(format!("integer weights need 2..=16 bits, not {bits}")),
            _ => Err(format!("`{s}` is not a weight kind (`b` or `i2`..`i16`)")),
        },
    }
}

fn parse_input(tok: &str) -> Result<(u32, u32, u32), String> {
    let dims: Option<Vec<u32>> = tok.split('x').map(|d| d.parse().ok()).collect();
    let bad = || format!("expected the input as `HxWxC`, `HxW` or `N`, found `{tok}`");
    match dims.ok_or_else(bad)?.as_slice() {
        [n] => Ok((1, *n, 1)),
        [h, w] => Ok((*h, *w, 1)),
        [h, w, c] => Ok((*h, *w, *c)),
        _ => Err(bad()),
    }
    .and_then(|d| {
        if d.0 == 0 || d.1 == 0 || d.2 == 0 {
            Err("input dimensions must be at least 1".into())
        } else if d.0.max(d.1).max(d.2) > MAX_DIM {
            Err(format!("input dimensions must be at most {MAX_DIM}"))
        } else {
            Ok(d)
        }
    })
}

fn parse_layer(tok: &str) -> Result<ArchLayer, String> {
    let (count, rest) = parse_num(tok).ok_or_else(|| LAYER_HELP.to_string())?;
    if count == 0 {
        return Err("a layer needs at least one output".into());
    }
    if count > MAX_DIM {
        return Err(format!(
            "a layer has at most {MAX_DIM} outputs, not {count}"
        ));
    }
    let (synapse, rest) = if let Some(conv) = rest.strip_prefix('C') {
        let (kernel, mut rest) =
            parse_num(conv).ok_or("a convolution needs a kernel size: `16C3`")?;
        if ![1, 3, 5].contains(&kernel) {
            return Err(format!("kernel {kernel} is not supported (1, 3 or 5)"));
        }
        let mut stride = 1;
        if let Some(s) = rest.strip_prefix('s') {
            let (v, r) = parse_num(s).ok_or("`s` must be followed by the stride: `s2`")?;
            if v != 1 && v != 2 {
                return Err(format!("stride {v} is not supported (1 or 2)"));
            }
            stride = v;
            rest = r;
        }
        let mut padding = Padding::Same;
        if let Some(r) = rest.strip_prefix('v') {
            padding = Padding::Valid;
            rest = r;
        }
        (
            Synapse::Conv {
                out_channels: count,
                kernel,
                stride,
                padding,
            },
            rest,
        )
    } else {
        (
            Synapse::Dense {
                out_features: count,
            },
            rest,
        )
    };
    Ok(ArchLayer {
        synapse,
        weights: parse_weights(rest)?,
        weights_given: !rest.is_empty(),
        pool: None,
    })
}

/// A layer in the notation: `16C3s2vb`, `10i8`, followed by `-MP2`/`-SP2` when pooled.
pub fn describe(layer: &crate::ir::Layer) -> String {
    let w = match &layer.weights {
        crate::ir::Weights::Binary { .. } => "b".to_string(),
        crate::ir::Weights::Integer { bits, .. } => format!("i{bits}"),
    };
    let op = match layer.synapse {
        Synapse::Conv {
            out_channels,
            kernel,
            stride,
            padding,
        } => format!(
            "{out_channels}C{kernel}{}{}",
            if stride == 2 { "s2" } else { "" },
            if padding == Padding::Valid { "v" } else { "" }
        ),
        Synapse::Dense { out_features } => out_features.to_string(),
    };
    let pool = match layer.pool {
        Some(Pool::Or) => "-MP2",
        Some(Pool::Sum) => "-SP2",
        None => "",
    };
    format!("{op}{w}{pool}")
}

/// Parses an architecture string.
pub fn parse(arch: &str) -> Result<Arch, ArchError> {
    let tokens: Vec<&str> = arch.split('-').collect();
    let fail = |index: usize, reason: String| {
        let start: usize = tokens[..index].iter().map(|t| t.len() + 1).sum();
        ArchError {
            arch: arch.to_string(),
            index: index + 1,
            token: tokens[index].to_string(),
            reason,
            caret: format!(
                "{}{}",
                " ".repeat(start),
                "^".repeat(tokens[index].len().max(1))
            ),
        }
    };
    let input = parse_input(tokens[0]).map_err(|r| fail(0, r))?;
    let mut layers: Vec<ArchLayer> = Vec::new();
    for (i, tok) in tokens.iter().enumerate().skip(1) {
        match *tok {
            "GAP" if i == tokens.len() - 1 => {}
            "GAP" => return Err(fail(i, "`GAP` must be the last token".into())),
            "MP2" | "SP2" | "AP2" => {
                let pool = if *tok == "MP2" { Pool::Or } else { Pool::Sum };
                match layers.last_mut() {
                    Some(l) if l.pool.is_none() => l.pool = Some(pool),
                    Some(_) => return Err(fail(i, "a layer can be pooled only once".into())),
                    None => return Err(fail(i, "pooling must follow a layer".into())),
                }
            }
            _ => layers.push(parse_layer(tok).map_err(|r| fail(i, r))?),
        }
    }
    if layers.is_empty() {
        return Err(fail(
            tokens.len() - 1,
            "the architecture has no layer".into(),
        ));
    }
    if layers.last().is_some_and(|l| l.pool.is_some()) {
        let i = tokens.iter().rposition(|t| t.ends_with("P2")).unwrap_or(0);
        return Err(fail(
            i,
            "the last layer feeds the GAP head and cannot be pooled".into(),
        ));
    }
    Ok(Arch { input, layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let a = parse("28x28x1-16C3b-MP2-32C3i8-SP2-10C1i8-GAP").unwrap();
        assert_eq!(a.input, (28, 28, 1));
        assert_eq!(a.layers.len(), 3);
        assert_eq!(a.layers[0].weights, WeightKind::Binary);
        assert_eq!(a.layers[0].pool, Some(Pool::Or));
        assert_eq!(a.layers[1].pool, Some(Pool::Sum));
        assert_eq!(a.layers[2].weights, WeightKind::Integer(8));
    }

    #[test]
    fn mlp_shorthand() {
        let a = parse("784-128b-10").unwrap();
        assert_eq!(a.input, (1, 784, 1));
        assert_eq!(a.layers[1].synapse, Synapse::Dense { out_features: 10 });
        assert_eq!(a.layers[1].weights, WeightKind::Integer(8));
    }

    #[test]
    fn conv_options() {
        let a = parse("8x8x2-4C5s2vi3-2").unwrap();
        assert_eq!(
            a.layers[0].synapse,
            Synapse::Conv {
                out_channels: 4,
                kernel: 5,
                stride: 2,
                padding: Padding::Valid
            }
        );
        assert_eq!(a.layers[0].weights, WeightKind::Integer(3));
    }

    #[test]
    fn error_points_at_the_token() {
        let e = parse("28x28x1-16C3b-32Q3-10").unwrap_err();
        assert_eq!(e.index, 3);
        assert_eq!(e.token, "32Q3");
        assert_eq!(e.caret, format!("{}^^^^", " ".repeat(14)));
        let e = parse("28x28x1-16C4b-10").unwrap_err();
        assert!(e.reason.contains("kernel 4"), "{e}");
        let e = parse("28x28x1-16C3i99-10").unwrap_err();
        assert!(e.reason.contains("2..=16"), "{e}");
        assert!(parse("28x28x1-MP2-10").is_err());
        assert!(parse("28x28x1-10-MP2").is_err());
    }

    #[test]
    fn sizes_beyond_the_ir_limits_are_refused_at_their_token() {
        let e = parse("28x28x1-99999C3-10").unwrap_err();
        assert_eq!((e.index, e.token.as_str()), (2, "99999C3"));
        assert!(e.reason.contains("at most 4096 outputs"), "{e}");
        let e = parse("5000x28x1-16C3-10").unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.reason.contains("at most 4096"), "{e}");
        assert!(parse("4096x1-4096-10").is_ok());
    }
}
