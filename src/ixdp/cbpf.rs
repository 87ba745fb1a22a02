//! A classic BPF (cBPF) interpreter for the programs libpcap compiles from pcap-filter
//! expressions: the tap filter runs it on the worker instead of calling `pcap_offline_filter`
//! (BENCHMARKS.md, issue 12, has both side by side).
//!
//! [`Program::decode`] checks a program once, as the kernel's and libpcap's validators do: every
//! opcode known, every jump inside the program, scratch memory indices below 16, no division by
//! a constant zero, and the last instruction a return. A decoded program therefore always ends
//! in a return, never indexes outside itself and never panics; [`Program::run`] only checks
//! packet bounds. The semantics are those of libpcap's `bpf_filter`: a load past the end of
//! the packet, or a division by a zero X, rejects the packet (returns 0).
//!
//! The program reads a frame through [`FrameBytes`]: the whole frame, also when it spans
//! several buffers (multi-buffer AF_XDP). A load inside the first buffer, where every header
//! is, costs one bounds check as on a plain slice; only loads past it gather bytes from the
//! later buffers.

use super::chain::FrameBytes;
use std::fmt;

/// Words of scratch memory (`BPF_MEMWORDS`).
pub const MEMWORDS: usize = 16;

/// One instruction as libpcap and the kernel store it (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Class, size, mode or operation and source bits.
    pub code: u16,
    /// Jump offset when the condition holds.
    pub jt: u8,
    /// Jump offset when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// A program that cannot run safely or uses an instruction this interpreter does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No instruction at all.
    #[error("the program is empty")]
    Empty,
    /// An opcode outside classic BPF.
    #[error("instruction {at}: unknown opcode {code:#06x}")]
    UnknownOpcode {
        /// Index of the instruction.
        at: usize,
        /// Its opcode.
        code: u16,
    },
    /// A jump past the last instruction.
    #[error("instruction {at}: jump past the end of the program")]
    JumpOutside {
        /// Index of the instruction.
        at: usize,
    },
    /// A scratch memory index of 16 or more.
    #[error("instruction {at}: scratch memory word {k} does not exist")]
    BadMemory {
        /// Index of the instruction.
        at: usize,
        /// The index it uses.
        k: u32,
    },
    /// A division or remainder by the constant 0.
    #[error("instruction {at}: division by zero")]
    DivideByZero {
        /// Index of the instruction.
        at: usize,
    },
    /// The last instruction is not a return, so a path could run off the end.
    #[error("the last instruction is not a return")]
    NoFinalReturn,
}

/// Arithmetic of the ALU class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alu {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Lsh,
    Rsh,
}

/// Conditions of the JMP class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
}

/// A decoded instruction: operands checked, jump targets absolute. Loads and conditional
/// jumps get one variant per size and condition, so that running one is a single dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    RetK(u32),
    RetA,
    LdW(u32),
    LdH(u32),
    LdB(u32),
    LdWInd(u32),
    LdHInd(u32),
    LdBInd(u32),
    LdLen,
    LdImm(u32),
    LdMem(u8),
    LdxImm(u32),
    LdxLen,
    LdxMem(u8),
    LdxMsh(u32),
    St(u8),
    Stx(u8),
    AluK(Alu, u32),
    AluX(Alu),
    Neg,
    Ja(u32),
    JeqK(u32, u32, u32),
    JgtK(u32, u32, u32),
    JgeK(u32, u32, u32),
    JsetK(u32, u32, u32),
    JmpX(Cond, u32, u32),
    Tax,
    Txa,
}

/// A checked cBPF program, ready to run on packets from any thread.
#[derive(Clone, PartialEq, Eq)]
pub struct Program {
    ops: Box<[Op]>,
}

// Opcode fields (linux/bpf_common.h, pcap/bpf.h).
const CLASS: u16 = 0x07;
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const SIZE: u16 = 0x18;
const MODE: u16 = 0xe0;
const OP: u16 = 0xf0;
const SRC_X: u16 = 0x08;

impl Program {
    /// Checks and decodes `insns`.
    pub fn decode(insns: &[Insn]) -> Result<Program, DecodeError> {
        if insns.is_empty() {
            return Err(DecodeError::Empty);
        }
        let ops = insns
            .iter()
            .enumerate()
            .map(|(at, i)| decode_one(at, i, insns.len()))
            .collect::<Result<Box<[Op]>, DecodeError>>()?;
        if !matches!(ops.last(), Some(Op::RetK(_) | Op::RetA)) {
            return Err(DecodeError::NoFinalReturn);
        }
        Ok(Program { ops })
    }

    /// The number of instructions.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Always false: a decoded program has at least its return.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs the program over `pkt` (the whole frame, in one buffer or several; its length is
    /// also the wire length) and returns what it returns: 0 rejects, anything else accepts.
    #[inline]
    pub fn run<P: FrameBytes + ?Sized>(&self, pkt: &P) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEMWORDS];
        let mut pc = 0usize;
        let len = pkt.wire_len() as u32;
        loop {
            // In bounds: decode checked every jump target and that the last op returns.
            let op = self.ops[pc];
            pc += 1;
            match op {
                Op::RetK(k) => return k,
                Op::RetA => return a,
                Op::LdW(k) => match load::<4, P>(pkt, k as usize) {
                    Some(v) => a = u32::from_be_bytes(v),
                    None => return 0,
                },
                Op::LdH(k) => match load::<2, P>(pkt, k as usize) {
                    Some(v) => a = u16::from_be_bytes(v).into(),
                    None => return 0,
                },
                Op::LdB(k) => match load::<1, P>(pkt, k as usize) {
                    Some([v]) => a = v.into(),
                    None => return 0,
                },
                Op::LdWInd(k) => match load::<4, P>(pkt, x as usize + k as usize) {
                    Some(v) => a = u32::from_be_bytes(v),
                    None => return 0,
                },
                Op::LdHInd(k) => match load::<2, P>(pkt, x as usize + k as usize) {
                    Some(v) => a = u16::from_be_bytes(v).into(),
                    None => return 0,
                },
                Op::LdBInd(k) => match load::<1, P>(pkt, x as usize + k as usize) {
                    Some([v]) => a = v.into(),
                    None => return 0,
                },
                Op::LdLen => a = len,
                Op::LdImm(k) => a = k,
                Op::LdMem(i) => a = mem[i as usize & (MEMWORDS - 1)],
                Op::LdxImm(k) => x = k,
                Op::LdxLen => x = len,
                Op::LdxMem(i) => x = mem[i as usize & (MEMWORDS - 1)],
                Op::LdxMsh(k) => match load::<1, P>(pkt, k as usize) {
                    Some([b]) => x = u32::from(b & 0xf) << 2,
                    None => return 0,
                },
                Op::St(i) => mem[i as usize & (MEMWORDS - 1)] = a,
                Op::Stx(i) => mem[i as usize & (MEMWORDS - 1)] = x,
                Op::AluK(f, k) => a = alu(f, a, k).unwrap_or(0),
                Op::AluX(f) => match alu(f, a, x) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::Neg => a = a.wrapping_neg(),
                Op::Ja(t) => pc = t as usize,
                Op::JeqK(k, t, f) => pc = if a == k { t } else { f } as usize,
                Op::JgtK(k, t, f) => pc = if a > k { t } else { f } as usize,
                Op::JgeK(k, t, f) => pc = if a >= k { t } else { f } as usize,
                Op::JsetK(k, t, f) => pc = if a & k != 0 { t } else { f } as usize,
                Op::JmpX(c, t, f) => pc = if cond(c, a, x) { t } else { f } as usize,
                Op::Tax => x = a,
                Op::Txa => a = x,
            }
        }
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Program({} instructions)", self.ops.len())
    }
}

/// The `N` bytes at `at`; None past the end. Inside the first buffer (every header) without
/// a copy; past it from the later buffers of a long frame.
#[inline(always)]
fn load<const N: usize, P: FrameBytes + ?Sized>(pkt: &P, at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    if let Some(b) = pkt.head().get(at..end) {
        return b.try_into().ok();
    }
    let mut out = [0u8; N];
    pkt.read_at(at, &mut out).then_some(out)
}

/// One ALU operation; None for a division or remainder by zero (the packet is rejected).
/// Shifts by 32 or more give 0, as 32-bit registers would.
#[inline(always)]
fn alu(f: Alu, a: u32, b: u32) -> Option<u32> {
    Some(match f {
        Alu::Add => a.wrapping_add(b),
        Alu::Sub => a.wrapping_sub(b),
        Alu::Mul => a.wrapping_mul(b),
        Alu::Div => a.checked_div(b)?,
        Alu::Mod => a.checked_rem(b)?,
        Alu::And => a & b,
        Alu::Or => a | b,
        Alu::Xor => a ^ b,
        Alu::Lsh => a.checked_shl(b).unwrap_or(0),
        Alu::Rsh => a.checked_shr(b).unwrap_or(0),
    })
}

#[inline(always)]
fn cond(c: Cond, a: u32, b: u32) -> bool {
    match c {
        Cond::Eq => a == b,
        Cond::Gt => a > b,
        Cond::Ge => a >= b,
        Cond::Set => a & b != 0,
    }
}

fn decode_one(at: usize, i: &Insn, len: usize) -> Result<Op, DecodeError> {
    let unknown = || DecodeError::UnknownOpcode { at, code: i.code };
    let mem = || {
        u8::try_from(i.k)
            .ok()
            .filter(|&k| usize::from(k) < MEMWORDS)
            .ok_or(DecodeError::BadMemory { at, k: i.k })
    };
    // Jumps are relative to the next instruction and always forward.
    let target = |off: u32| {
        let t = at as u64 + 1 + u64::from(off);
        if t < len as u64 {
            Ok(t as u32)
        } else {
            Err(DecodeError::JumpOutside { at })
        }
    };
    Ok(match i.code & CLASS {
        LD => match (i.code & MODE, i.code & SIZE) {
            (0x00, 0x00) => Op::LdImm(i.k),
            (0x20, 0x00) => Op::LdW(i.k),
            (0x20, 0x08) => Op::LdH(i.k),
            (0x20, 0x10) => Op::LdB(i.k),
            (0x40, 0x00) => Op::LdWInd(i.k),
            (0x40, 0x08) => Op::LdHInd(i.k),
            (0x40, 0x10) => Op::LdBInd(i.k),
            (0x60, 0x00) => Op::LdMem(mem()?),
            (0x80, 0x00) => Op::LdLen,
            _ => return Err(unknown()),
        },
        LDX => match (i.code & MODE, i.code & SIZE) {
            (0x00, 0x00) => Op::LdxImm(i.k),
            (0x60, 0x00) => Op::LdxMem(mem()?),
            (0x80, 0x00) => Op::LdxLen,
            (0xa0, 0x10) => Op::LdxMsh(i.k),
            _ => return Err(unknown()),
        },
        ST if i.code == ST => Op::St(mem()?),
        STX if i.code == STX => Op::Stx(mem()?),
        ALU => {
            let f = match i.code & OP {
                0x80 if i.code & SRC_X == 0 => return Ok(Op::Neg),
                0x00 => Alu::Add,
                0x10 => Alu::Sub,
                0x20 => Alu::Mul,
                0x30 => Alu::Div,
                0x40 => Alu::Or,
                0x50 => Alu::And,
                0x60 => Alu::Lsh,
                0x70 => Alu::Rsh,
                0x90 => Alu::Mod,
                0xa0 => Alu::Xor,
                _ => return Err(unknown()),
            };
            if i.code & !(OP | SRC_X) != ALU {
                return Err(unknown());
            }
            if i.code & SRC_X != 0 {
                Op::AluX(f)
            } else if matches!(f, Alu::Div | Alu::Mod) && i.k == 0 {
                return Err(DecodeError::DivideByZero { at });
            } else {
                Op::AluK(f, i.k)
            }
        }
        JMP => {
            if i.code & !(OP | SRC_X) != JMP {
                return Err(unknown());
            }
            let c = match i.code & OP {
                0x00 if i.code & SRC_X == 0 => return Ok(Op::Ja(target(i.k)?)),
                0x10 => Cond::Eq,
                0x20 => Cond::Gt,
                0x30 => Cond::Ge,
                0x40 => Cond::Set,
                _ => return Err(unknown()),
            };
            let (t, f) = (target(i.jt.into())?, target(i.jf.into())?);
            match (c, i.code & SRC_X != 0) {
                (c, true) => Op::JmpX(c, t, f),
                (Cond::Eq, false) => Op::JeqK(i.k, t, f),
                (Cond::Gt, false) => Op::JgtK(i.k, t, f),
                (Cond::Ge, false) => Op::JgeK(i.k, t, f),
                (Cond::Set, false) => Op::JsetK(i.k, t, f),
            }
        }
        RET => match i.code & !CLASS {
            0x00 => Op::RetK(i.k),
            0x10 => Op::RetA,
            _ => return Err(unknown()),
        },
        MISC => match i.code & !CLASS {
            0x00 => Op::Tax,
            0x80 => Op::Txa,
            _ => return Err(unknown()),
        },
        _ => return Err(unknown()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    fn run(insns: &[Insn], pkt: &[u8]) -> u32 {
        Program::decode(insns).unwrap().run(pkt)
    }

    #[test]
    fn loads_are_big_endian_and_reject_past_the_end() {
        let pkt = [0x12, 0x34, 0x56, 0x78, 0x9a];
        let ret_a = insn(0x16, 0, 0, 0);
        assert_eq!(run(&[insn(0x20, 0, 0, 1), ret_a], &pkt), 0x3456_789a);
        assert_eq!(run(&[insn(0x28, 0, 0, 3), ret_a], &pkt), 0x789a);
        assert_eq!(run(&[insn(0x30, 0, 0, 4), ret_a], &pkt), 0x9a);
        // A load that does not fit rejects, whatever follows.
        let ret_k = insn(0x06, 0, 0, 7);
        assert_eq!(run(&[insn(0x20, 0, 0, 2), ret_k], &pkt), 0);
        assert_eq!(run(&[insn(0x30, 0, 0, 5), ret_k], &pkt), 0);
        assert_eq!(run(&[insn(0x30, 0, 0, u32::MAX), ret_k], &pkt), 0);
        // Indirect: X + k, no overflow even at the top of the range.
        let ldx = |k| insn(0x01, 0, 0, k);
        assert_eq!(run(&[ldx(2), insn(0x50, 0, 0, 1), ret_a], &pkt), 0x78);
        assert_eq!(
            run(&[ldx(u32::MAX), insn(0x50, 0, 0, u32::MAX), ret_k], &pkt),
            0
        );
        // MSH: the IPv4 header length of the byte at k.
        assert_eq!(
            run(&[insn(0xb1, 0, 0, 0), insn(0x87, 0, 0, 0), ret_a], &[0x45]),
            20
        );
        assert_eq!(run(&[insn(0xb1, 0, 0, 1), ret_k], &[0x45]), 0);
        // Lengths.
        assert_eq!(run(&[insn(0x80, 0, 0, 0), ret_a], &pkt), 5);
        assert_eq!(
            run(&[insn(0x81, 0, 0, 0), insn(0x87, 0, 0, 0), ret_a], &pkt),
            5
        );
    }

    /// A frame cut into buffers of `size` bytes, as a long frame arrives from AF_XDP.
    struct Split(Vec<Vec<u8>>);

    impl FrameBytes for Split {
        fn wire_len(&self) -> usize {
            self.0.iter().map(Vec::len).sum()
        }
        fn head(&self) -> &[u8] {
            &self.0[0]
        }
        fn read_at(&self, at: usize, out: &mut [u8]) -> bool {
            crate::ixdp::chain::read_parts(self.0.iter().map(Vec::as_slice), at, out)
        }
    }

    #[test]
    fn a_frame_in_several_buffers_reads_as_the_whole_frame() {
        let frame: Vec<u8> = (0..40u8).collect();
        let split = Split(frame.chunks(16).map(<[u8]>::to_vec).collect());
        let ret_a = insn(0x16, 0, 0, 0);
        let ldx = |k| insn(0x01, 0, 0, k);
        for at in 0..44 {
            let progs = [
                vec![insn(0x20, 0, 0, at), ret_a],
                vec![insn(0x28, 0, 0, at), ret_a],
                vec![insn(0x30, 0, 0, at), ret_a],
                vec![ldx(at), insn(0x40, 0, 0, 1), ret_a],
                vec![insn(0xb1, 0, 0, at), insn(0x87, 0, 0, 0), ret_a],
            ];
            for p in &progs {
                let prog = Program::decode(p).unwrap();
                assert_eq!(prog.run(&split), prog.run(&frame[..]), "{p:?}");
            }
        }
        let len = Program::decode(&[insn(0x80, 0, 0, 0), ret_a]).unwrap();
        assert_eq!(len.run(&split), 40, "the length is the whole frame's");
    }

    #[test]
    fn arithmetic_wraps_and_division_by_a_zero_x_rejects() {
        let ret_a = insn(0x16, 0, 0, 0);
        let ld = |k| insn(0x00, 0, 0, k);
        let alu_k = |op: u16, k| insn(0x04 | op, 0, 0, k);
        assert_eq!(run(&[ld(u32::MAX), alu_k(0x00, 2), ret_a], &[]), 1);
        assert_eq!(run(&[ld(1), alu_k(0x10, 2), ret_a], &[]), u32::MAX);
        assert_eq!(run(&[ld(7), alu_k(0x30, 2), ret_a], &[]), 3);
        assert_eq!(run(&[ld(7), alu_k(0x90, 4), ret_a], &[]), 3);
        assert_eq!(run(&[ld(1), alu_k(0x60, 31), ret_a], &[]), 1 << 31);
        assert_eq!(run(&[ld(1), alu_k(0x60, 32), ret_a], &[]), 0);
        assert_eq!(run(&[ld(8), alu_k(0x70, 40), ret_a], &[]), 0);
        assert_eq!(run(&[ld(0xf0), alu_k(0xa0, 0xff), ret_a], &[]), 0x0f);
        assert_eq!(
            run(&[ld(5), insn(0x84, 0, 0, 0), ret_a], &[]),
            5u32.wrapping_neg()
        );
        // X = 0: division and remainder reject the packet.
        let ret_k = insn(0x06, 0, 0, 9);
        assert_eq!(run(&[ld(5), insn(0x3c, 0, 0, 0), ret_k], &[]), 0);
        assert_eq!(run(&[ld(5), insn(0x9c, 0, 0, 0), ret_k], &[]), 0);
        assert_eq!(
            run(
                &[ld(6), insn(0x01, 0, 0, 3), insn(0x3c, 0, 0, 0), ret_a],
                &[]
            ),
            2
        );
    }

    #[test]
    fn jumps_scratch_memory_and_register_moves() {
        // if A == 3 return 1 else return 2, then through scratch memory and TAX/TXA.
        let prog = [
            insn(0x00, 0, 0, 3),
            insn(0x02, 0, 0, 15),
            insn(0x00, 0, 0, 0),
            insn(0x61, 0, 0, 15),
            insn(0x87, 0, 0, 0),
            insn(0x15, 0, 1, 3),
            insn(0x06, 0, 0, 1),
            insn(0x06, 0, 0, 2),
        ];
        assert_eq!(run(&prog, &[]), 1);
        let mut other = prog;
        other[0].k = 4;
        assert_eq!(run(&other, &[]), 2);
        let ja = [
            insn(0x05, 0, 0, 1),
            insn(0x06, 0, 0, 1),
            insn(0x06, 0, 0, 5),
        ];
        assert_eq!(run(&ja, &[]), 5);
        let jset = [
            insn(0x00, 0, 0, 6),
            insn(0x45, 0, 1, 4),
            insn(0x06, 0, 0, 1),
            insn(0x06, 0, 0, 0),
        ];
        assert_eq!(run(&jset, &[]), 1);
        let jgt_x = [
            insn(0x00, 0, 0, 6),
            insn(0x01, 0, 0, 6),
            insn(0x2d, 0, 1, 0),
            insn(0x06, 0, 0, 1),
            insn(0x3d, 0, 1, 0),
            insn(0x06, 0, 0, 2),
            insn(0x06, 0, 0, 3),
        ];
        assert_eq!(run(&jgt_x, &[]), 2, "6 > 6 fails, 6 >= 6 holds");
    }

    #[test]
    fn unsafe_programs_are_refused() {
        let ret = insn(0x06, 0, 0, 0);
        assert_eq!(Program::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            Program::decode(&[insn(0x00, 0, 0, 0)]),
            Err(DecodeError::NoFinalReturn)
        );
        assert_eq!(
            Program::decode(&[insn(0x15, 1, 0, 0), ret]),
            Err(DecodeError::JumpOutside { at: 0 })
        );
        assert_eq!(
            Program::decode(&[insn(0x05, 0, 0, u32::MAX), ret]),
            Err(DecodeError::JumpOutside { at: 0 })
        );
        assert_eq!(
            Program::decode(&[insn(0x02, 0, 0, 16), ret]),
            Err(DecodeError::BadMemory { at: 0, k: 16 })
        );
        assert_eq!(
            Program::decode(&[insn(0x34, 0, 0, 0), ret]),
            Err(DecodeError::DivideByZero { at: 0 })
        );
        for code in [
            0x0e_u16,
            0x18,
            0x20 | 0x18,
            0xc4,
            0xb4,
            0x1e,
            0x17 | 0x08,
            0xe5,
            0x0d,
            0x12,
        ] {
            assert!(
                matches!(
                    Program::decode(&[insn(code, 0, 0, 0), ret]),
                    Err(DecodeError::UnknownOpcode { at: 0, .. })
                ),
                "{code:#x}"
            );
        }
    }
}
