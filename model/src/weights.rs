//! Packing and unpacking of weights: binary sign bits ⇄ lowercase hex (LSB-first within each
//! byte, byte 0 first), and any weights as signed integers.

use bitvec::prelude::*;

use crate::ir::{Layer, Weights};

/// Packs ±1 weights (`true` = +1) into the IR's hex form.
pub fn pack_signs(signs: &BitSlice<u8, Lsb0>) -> String {
    let mut bv: BitVec<u8, Lsb0> = signs.to_bitvec();
    bv.set_uninitialized(false);
    bv.as_raw_slice()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Unpacks `n` sign bits from hex. Returns `None` on a non-hex digit or short input.
pub fn unpack_signs(hex: &str, n: usize) -> Option<BitVec<u8, Lsb0>> {
    if hex.len() < n.div_ceil(8) * 2 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..n.div_ceil(8))
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let mut bv = BitVec::<u8, Lsb0>::from_vec(bytes?);
    bv.truncate(n);
    Some(bv)
}

/// All weights of a (validated) layer as integers, ±1 for binary layers, in IR order.
pub fn weight_values(layer: &Layer, n: usize) -> Vec<i64> {
    match &layer.weights {
        Weights::Binary { signs } => unpack_signs(signs, n)
            .map(|bits| bits.iter().map(|b| if *b { 1 } else { -1 }).collect())
            .unwrap_or_else(|| vec![1; n]),
        Weights::Integer { values, .. } => values.iter().map(|&v| v as i64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_round_trip_lsb_first() {
        let bits = bitvec![u8, Lsb0; 1, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        let hex = pack_signs(&bits);
        assert_eq!(hex, "0103");
        assert_eq!(unpack_signs(&hex, 10).unwrap(), bits);
        assert!(unpack_signs("01", 10).is_none());
    }
}
