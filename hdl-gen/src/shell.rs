//! The UART shell and board tops: the network behind a serial line, so that a board needs
//! nothing but a USB cable. The host sends one image's bytes (raster order, channels
//! innermost, one byte per pixel value, the value in the low `pixel_bits`) and then reads one
//! byte: the class index.
//!
//! Received bytes wait in a FIFO that holds a whole image, so the network may stall its input
//! for as long as it likes while the host sends; a host that waits for each class byte before
//! sending the next image can never overrun it. Bytes arriving at a full FIFO are dropped.

use crate::names::{self, Names};
use crate::rtl::index_bits;
use crate::vlog::*;

/// Width of the bit-timing counters: up to 65 535 clock cycles per UART bit.
const COUNT_BITS: u32 = 16;

/// What the shell needs to know of the network.
#[derive(Debug, Clone, Copy)]
pub struct ShellShape {
    /// Bytes per image (height · width · channels).
    pub image_bytes: u32,
    /// Values per input beat (pixels per beat · channels).
    pub values_per_beat: u32,
    /// Bits per pixel value.
    pub pixel_bits: u32,
    /// Width of the result stream.
    pub out_bits: u32,
    /// Bits of the class index (low bits of the result).
    pub class_bits: u32,
}

fn clks_param(m: &mut Module, default: u64) {
    m.params
        .push((names::CLKS_PER_BIT.into(), lit(COUNT_BITS, default)));
}

fn clks_per_bit() -> Expr {
    id(names::CLKS_PER_BIT)
}

/// A blank line and an instance whose `clk` and `rst` connect to the parent's, then `ports`.
fn instance(
    m: &mut Module,
    module: String,
    params: Vec<(String, Expr)>,
    name: &str,
    ports: Vec<(&str, Expr)>,
) {
    let mut conns = vec![
        (names::CLK.to_string(), id(names::CLK)),
        (names::RST.to_string(), id(names::RST)),
    ];
    conns.extend(ports.into_iter().map(|(p, e)| (p.to_string(), e)));
    m.items.push(Item::Blank);
    m.items.push(Item::Inst {
        module,
        params,
        name: name.into(),
        conns,
    });
}

/// 8N1 receiver: waits half a bit after the falling edge of the start bit, then samples the
/// middle of every bit; a start bit that is gone by its middle, or a missing stop bit,
/// drops the byte.
pub fn uart_rx(names: &Names, clks: u64) -> Module {
    let mut m = Module::new(
        names.uart_rx(),
        vec!["UART receiver, 8 data bits, no parity, 1 stop bit; LSB first.".into()],
    );
    clks_param(&mut m, clks);
    m.input(names::CLK, 1);
    m.input(names::RST, 1);
    m.input("rx", 1);
    m.output_reg("out_valid", 1);
    m.output_reg("out_data", 8);
    m.comment("Two flip-flops bring the asynchronous line into the clock domain.");
    let meta = m.reg("rx_meta", 1);
    let sync = m.reg("rx_sync", 1);
    let busy = m.reg("busy", 1);
    let count = m.reg("count", COUNT_BITS);
    let bit = m.reg("bit_index", 4);
    let data = id("out_data");
    m.seq(vec![
        Stmt::Nb(meta.clone(), id("rx")),
        Stmt::Nb(sync.clone(), meta),
        Stmt::Nb(id("out_valid"), zero()),
        Stmt::If(
            id(names::RST),
            vec![Stmt::Nb(busy.clone(), zero())],
            vec![Stmt::If(
                busy.clone().not(),
                vec![when(
                    sync.clone().not(),
                    vec![
                        Stmt::Nb(busy.clone(), one()),
                        Stmt::Nb(count.clone(), clks_per_bit().ashr(lit(2, 1))),
                        Stmt::Nb(bit.clone(), lit(4, 0)),
                    ],
                )],
                vec![Stmt::If(
                    count.clone().ne(lit(COUNT_BITS, 0)),
                    vec![Stmt::Nb(
                        count.clone(),
                        count.clone().sub(lit(COUNT_BITS, 1)),
                    )],
                    vec![
                        Stmt::Nb(count.clone(), clks_per_bit().sub(lit(COUNT_BITS, 1))),
                        Stmt::If(
                            bit.clone().eq(lit(4, 0)),
                            vec![Stmt::If(
                                sync.clone(),
                                vec![Stmt::Nb(busy.clone(), zero())],
                                vec![Stmt::Nb(bit.clone(), lit(4, 1))],
                            )],
                            vec![Stmt::If(
                                bit.clone().le(lit(4, 8)),
                                vec![
                                    Stmt::Nb(
                                        data.clone(),
                                        cat(vec![sync.clone(), data.slice(7, 1)]),
                                    ),
                                    Stmt::Nb(bit.clone(), bit.clone().add(lit(4, 1))),
                                ],
                                vec![Stmt::Nb(busy, zero()), Stmt::Nb(id("out_valid"), sync)],
                            )],
                        ),
                    ],
                )],
            )],
        ),
    ]);
    m
}

/// 8N1 transmitter with a stream input; the line idles high.
pub fn uart_tx(names: &Names, clks: u64) -> Module {
    let mut m = Module::new(
        names.uart_tx(),
        vec!["UART transmitter, 8 data bits, no parity, 1 stop bit; LSB first.".into()],
    );
    clks_param(&mut m, clks);
    m.input(names::CLK, 1);
    m.input(names::RST, 1);
    m.input("in_valid", 1);
    m.output("in_ready", 1);
    m.input("in_data", 8);
    m.output_reg("tx", 1);
    m.comment("Start bit, 8 data bits, stop bit, and one more stop period before the next start.");
    let shift = m.reg("shift", 11);
    let left = m.reg("bits_left", 4);
    let count = m.reg("count", COUNT_BITS);
    m.assign(id("in_ready"), left.clone().eq(lit(4, 0)));
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(id("tx"), one()),
            Stmt::Nb(left.clone(), lit(4, 0)),
            Stmt::Nb(count.clone(), lit(COUNT_BITS, 0)),
        ],
        vec![Stmt::If(
            left.clone().eq(lit(4, 0)),
            vec![when(
                id("in_valid"),
                vec![
                    Stmt::Nb(shift.clone(), cat(vec![lit(2, 3), id("in_data"), zero()])),
                    Stmt::Nb(left.clone(), lit(4, 11)),
                ],
            )],
            vec![Stmt::If(
                count.clone().ne(lit(COUNT_BITS, 0)),
                vec![Stmt::Nb(
                    count.clone(),
                    count.clone().sub(lit(COUNT_BITS, 1)),
                )],
                vec![
                    Stmt::Nb(id("tx"), shift.clone().bit(0)),
                    Stmt::Nb(shift.clone(), cat(vec![one(), shift.slice(10, 1)])),
                    Stmt::Nb(left.clone(), left.sub(lit(4, 1))),
                    Stmt::Nb(count, clks_per_bit().sub(lit(COUNT_BITS, 1))),
                ],
            )],
        )],
    )]);
    m
}

/// A byte FIFO of `depth` (a power of two) with a registered read port, so it maps to block
/// RAM; `out_valid` rises one cycle after `out_ready` takes a byte from a non-empty FIFO.
pub fn byte_fifo(names: &Names, depth: u32) -> Module {
    let a = index_bits(depth as u64);
    let mut m = Module::new(
        names.byte_fifo(),
        vec![format!("Byte FIFO, {depth} entries, registered read.")],
    );
    m.input(names::CLK, 1);
    m.input(names::RST, 1);
    m.input("in_valid", 1);
    m.input("in_data", 8);
    m.input("out_ready", 1);
    m.output_reg("out_valid", 1);
    m.output_reg("out_data", 8);
    let mem = m.mem("mem", 8, depth);
    let wr = m.reg("wr_ptr", a + 1);
    let rd = m.reg("rd_ptr", a + 1);
    let full = m.wire_eq(
        "full",
        1,
        wr.clone().bit(a).ne(rd.clone().bit(a)).and(
            wr.clone()
                .slice(a.max(1) - 1, 0)
                .eq(rd.clone().slice(a.max(1) - 1, 0)),
        ),
    );
    let empty = m.wire_eq("empty", 1, wr.clone().eq(rd.clone()));
    let push = m.wire_eq("push", 1, id("in_valid").and(full.not()));
    let pop = m.wire_eq("pop", 1, id("out_ready").and(empty.not()));
    let at = |p: &Expr| p.clone().slice(a.max(1) - 1, 0);
    m.seq(vec![
        when(
            push.clone(),
            vec![Stmt::Nb(mem.clone().idx(at(&wr)), id("in_data"))],
        ),
        Stmt::Nb(id("out_data"), mem.idx(at(&rd))),
        Stmt::If(
            id(names::RST),
            vec![
                Stmt::Nb(wr.clone(), lit(a + 1, 0)),
                Stmt::Nb(rd.clone(), lit(a + 1, 0)),
                Stmt::Nb(id("out_valid"), zero()),
            ],
            vec![
                when(push, vec![Stmt::Nb(wr.clone(), wr.add(lit(a + 1, 1)))]),
                when(
                    pop.clone(),
                    vec![Stmt::Nb(rd.clone(), rd.add(lit(a + 1, 1)))],
                ),
                Stmt::Nb(id("out_valid"), pop),
            ],
        ),
    ]);
    m
}

/// The shell: receiver → FIFO → beat packer → network top → class byte → transmitter.
pub fn uart_shell(names: &Names, shape: ShellShape, in_bits: u32, clks: u64) -> Module {
    let mut m = Module::new(
        names.uart_shell(),
        vec![
            format!(
                "UART shell: send {} bytes (one image), receive 1 byte (the class).",
                shape.image_bytes
            ),
            format!(
                "{} = clock / baud; bytes wait in a {}-byte FIFO.",
                names::CLKS_PER_BIT,
                shape.image_bytes.next_power_of_two()
            ),
        ],
    );
    clks_param(&mut m, clks);
    m.params
        .push(("ROM_DIR".into(), Expr::Str(crate::ROM_DIR_DEFAULT.into())));
    m.input(names::CLK, 1);
    m.input(names::RST, 1);
    m.input(names::UART_RX, 1);
    m.output(names::UART_TX, 1);
    let rx_valid = m.wire("rx_valid", 1);
    let rx_data = m.wire("rx_data", 8);
    instance(
        &mut m,
        names.uart_rx(),
        clk_param(),
        "u_rx",
        vec![
            ("rx", id(names::UART_RX)),
            ("out_valid", rx_valid.clone()),
            ("out_data", rx_data.clone()),
        ],
    );
    let beat = packer(&mut m, names, shape, in_bits, (rx_valid, rx_data));
    let (res_valid, res_ready, res_data) = network(&mut m, names, shape, beat);
    m.comment("The class index goes back as one byte; the logits stay inside.");
    let cb = shape.class_bits.min(8);
    let class = if cb == 8 {
        res_data.slice(7, 0)
    } else {
        cat(vec![lit(8 - cb, 0), res_data.slice(cb - 1, 0)])
    };
    instance(
        &mut m,
        names.uart_tx(),
        clk_param(),
        "u_tx",
        vec![
            ("in_valid", res_valid),
            ("in_ready", res_ready),
            ("in_data", class),
            ("tx", id(names::UART_TX)),
        ],
    );
    m
}

/// The `CLKS_PER_BIT` parameter passed down to a UART.
fn clk_param() -> Vec<(String, Expr)> {
    vec![(names::CLKS_PER_BIT.to_string(), clks_per_bit())]
}

/// The beat packer's handshake towards the network: `(valid, ready)`.
type Beat = (Expr, Expr);

/// The received bytes' FIFO and the packer that shifts `values_per_beat` of them into one
/// input beat (the low `pixel_bits` of each). Returns the beat's valid and ready wires.
fn packer(
    m: &mut Module,
    names: &Names,
    shape: ShellShape,
    in_bits: u32,
    (rx_valid, rx_data): (Expr, Expr),
) -> Beat {
    let (vpb, pb) = (shape.values_per_beat, shape.pixel_bits);
    m.comment("The packer takes one byte every other cycle while it has room for it.");
    let fifo_valid = m.wire("fifo_valid", 1);
    // Values narrower than a byte leave the byte's high bits unread.
    if pb < 8 {
        m.items
            .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
    }
    let fifo_data = m.wire("fifo_data", 8);
    if pb < 8 {
        m.items
            .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
    }
    let fill_bits = index_bits(vpb as u64 + 1);
    let fill = m.reg("fill", fill_bits);
    let beat = m.reg("beat", in_bits);
    let beat_valid = m.reg("beat_valid", 1);
    let beat_ready = m.wire("beat_ready", 1);
    let take = m.wire_eq(
        "take",
        1,
        beat_valid.clone().not().and(fifo_valid.clone().not()),
    );
    instance(
        m,
        names.byte_fifo(),
        vec![],
        "u_fifo",
        vec![
            ("in_valid", rx_valid),
            ("in_data", rx_data),
            ("out_ready", take),
            ("out_valid", fifo_valid.clone()),
            ("out_data", fifo_data.clone()),
        ],
    );
    let value = fifo_data.slice(pb - 1, 0);
    let shifted = if vpb == 1 {
        value
    } else {
        cat(vec![value, beat.clone().slice(in_bits - 1, pb)])
    };
    let last = fill.clone().eq(lit(fill_bits, vpb as u64 - 1));
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(fill.clone(), lit(fill_bits, 0)),
            Stmt::Nb(beat_valid.clone(), zero()),
        ],
        vec![
            when(
                beat_valid.clone().and(beat_ready.clone()),
                vec![Stmt::Nb(beat_valid.clone(), zero())],
            ),
            when(
                fifo_valid,
                vec![
                    Stmt::Nb(beat, shifted),
                    Stmt::If(
                        last,
                        vec![
                            Stmt::Nb(fill.clone(), lit(fill_bits, 0)),
                            Stmt::Nb(beat_valid.clone(), one()),
                        ],
                        vec![Stmt::Nb(fill.clone(), fill.add(lit(fill_bits, 1)))],
                    ),
                ],
            ),
        ],
    )]);
    (beat_valid, beat_ready)
}

/// The network top on the packed beats; returns its result's valid, ready and data.
fn network(m: &mut Module, names: &Names, shape: ShellShape, beat: Beat) -> (Expr, Expr, Expr) {
    let (beat_valid, beat_ready) = beat;
    m.comment("The network.");
    let res_valid = m.wire("result_valid", 1);
    let res_ready = m.wire("result_ready", 1);
    // The logits stay inside: only the class bits of the result are read.
    m.items
        .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
    let res_data = m.wire("result_data", shape.out_bits);
    m.items
        .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
    instance(
        m,
        names.top(),
        vec![("ROM_DIR".into(), id("ROM_DIR"))],
        "u_net",
        vec![
            (names::S_TVALID, beat_valid),
            (names::S_TREADY, beat_ready),
            (names::S_TDATA, id("beat")),
            (names::M_TVALID, res_valid.clone()),
            (names::M_TREADY, res_ready.clone()),
            (names::M_TDATA, res_data.clone()),
        ],
    );
    (res_valid, res_ready, res_data)
}

/// A board top: the board's clock and serial pins, a power-on reset, the shell; with a PLL,
/// the clock module ([`crate::pll::clock_module`]) makes the shell's clock and reset.
pub fn board_top(names: &Names, board: &str, clks: u64, pll: Option<&crate::pll::Pll>) -> Module {
    let mut m = Module::new(
        names.board_top(board),
        vec![format!(
            "Board top for `{board}`: pins clk, {}, {} (see the pin file).",
            names::UART_RX,
            names::UART_TX
        )],
    );
    clks_param(&mut m, clks);
    m.params
        .push(("ROM_DIR".into(), Expr::Str(crate::ROM_DIR_DEFAULT.into())));
    m.input(names::CLK, 1);
    m.input(names::UART_RX, 1);
    m.output(names::UART_TX, 1);
    let (clk, rst) = match pll {
        None => {
            m.comment("Power-on reset: 15 cycles after configuration (flip-flops power up as 0).");
            let por = m.reg("por_count", 4);
            m.items
                .push(Item::Initial(vec![Stmt::Set(por.clone(), lit(4, 0))]));
            let rst = m.wire_eq("rst", 1, por.clone().eq(lit(4, 15)).not());
            m.seq(vec![when(
                rst.clone(),
                vec![Stmt::Nb(por.clone(), por.add(lit(4, 1)))],
            )]);
            (id(names::CLK), rst)
        }
        Some(_) => {
            let (clk, rst) = (m.wire("pll_clk", 1), m.wire("rst", 1));
            m.items.push(Item::Blank);
            m.items.push(Item::Inst {
                module: names.board_clock(board),
                params: vec![],
                name: "u_clock".into(),
                conns: vec![
                    (crate::pll::BOARD_CLK.into(), id(names::CLK)),
                    (names::CLK.into(), clk.clone()),
                    (names::RST.into(), rst.clone()),
                ],
            });
            (clk, rst)
        }
    };
    m.items.push(Item::Blank);
    m.items.push(Item::Inst {
        module: names.uart_shell(),
        params: vec![
            (names::CLKS_PER_BIT.into(), clks_per_bit()),
            ("ROM_DIR".into(), id("ROM_DIR")),
        ],
        name: "u_shell".into(),
        conns: vec![
            (names::CLK.into(), clk),
            (names::RST.into(), rst),
            (names::UART_RX.into(), id(names::UART_RX)),
            (names::UART_TX.into(), id(names::UART_TX)),
        ],
    });
    m
}
