//! Node ids and the XOR metric (BEP 5): 160-bit ids, distance as the XOR of two ids read
//! as a big-endian number, and the index of the highest bit two ids differ in (which
//! bucket a node falls in, seen from our id).

use std::fmt;

/// A DHT node id (or an info-hash used as a lookup target): 20 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

/// The XOR distance between two ids; compares as the big-endian number it is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; 20]);

impl NodeId {
    /// The id from exactly 20 bytes; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<NodeId> {
        b.try_into().ok().map(NodeId)
    }

    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; 20];
        for (i, x) in d.iter_mut().enumerate() {
            *x = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Number of leading bits `self` and `other` share (160 when equal): the depth of the
    /// routing-table bucket `other` belongs in, from `self`.
    pub fn common_prefix(&self, other: &NodeId) -> u32 {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i as u32 * 8 + x.leading_zeros();
            }
        }
        160
    }

    /// A copy with bit `bit` (0 = the most significant) flipped and every later bit taken
    /// from `fill`: a random id that shares exactly `bit` leading bits with `self` (used
    /// to refresh a bucket).
    pub fn with_prefix_of(&self, bit: u32, fill: &NodeId) -> NodeId {
        let bit = bit.min(159) as usize;
        let mut out = fill.0;
        for (i, o) in out.iter_mut().enumerate() {
            let start = i * 8;
            // Bits of this byte before `bit` come from self, the rest from `fill`.
            let keep: u8 = if start + 8 <= bit {
                0xff
            } else if start >= bit {
                0
            } else {
                !(0xffu8 >> (bit - start))
            };
            *o = (self.0[i] & keep) | (*o & !keep);
        }
        // Flip bit `bit` relative to self so the prefix is exactly `bit` long.
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        out[byte] = (out[byte] & !mask) | (!self.0[byte] & mask);
        NodeId(out)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8) -> NodeId {
        let mut b = [0u8; 20];
        b[0] = first;
        NodeId(b)
    }

    #[test]
    fn distance_orders_as_a_number() {
        let a = id(0b1000_0000);
        assert!(a.distance(&id(0b1000_0001)) < a.distance(&id(0b1000_0010)));
        assert!(a.distance(&id(0b1100_0000)) < a.distance(&id(0)));
        assert_eq!(a.distance(&a), Distance([0; 20]));
    }

    #[test]
    fn common_prefix_counts_shared_leading_bits() {
        assert_eq!(id(0).common_prefix(&id(0)), 160);
        assert_eq!(id(0).common_prefix(&id(0x80)), 0);
        assert_eq!(id(0).common_prefix(&id(0x01)), 7);
        let mut b = [0u8; 20];
        b[19] = 1;
        assert_eq!(id(0).common_prefix(&NodeId(b)), 159);
    }

    #[test]
    fn an_id_with_a_given_prefix_shares_exactly_that_many_bits() {
        let me = NodeId([0x5a; 20]);
        let fill = NodeId([0xc3; 20]);
        for bit in [0, 1, 7, 8, 9, 63, 100, 158, 159] {
            let other = me.with_prefix_of(bit, &fill);
            assert_eq!(me.common_prefix(&other), bit, "bit {bit}");
        }
    }
}
