//! The network core (every layer chained by streams, one tap per layer for co-simulation)
//! and the synthesis top (stream ports only, wrapping the core).

use crate::dwc::Beat;
use crate::names::{self, tap_data, tap_valid, Names};
use crate::rtl::LayerCtx;
use crate::vlog::*;

/// Stream wires `NAME_valid`, `NAME_ready`, `NAME_data`.
struct Stream {
    valid: Expr,
    ready: Expr,
    data: Expr,
}

fn stream(m: &mut Module, name: &str, width: u32) -> Stream {
    Stream {
        valid: m.wire(&format!("{name}_valid"), 1),
        ready: m.wire(&format!("{name}_ready"), 1),
        data: m.wire(&format!("{name}_data"), width),
    }
}

fn instance(
    m: &mut Module,
    module: String,
    name: String,
    rom: bool,
    input: &Stream,
    output: &Stream,
) {
    let conns = vec![
        (names::CLK.to_string(), id(names::CLK)),
        (names::RST.to_string(), id(names::RST)),
        ("in_valid".into(), input.valid.clone()),
        ("in_ready".into(), input.ready.clone()),
        ("in_data".into(), input.data.clone()),
        ("out_valid".into(), output.valid.clone()),
        ("out_ready".into(), output.ready.clone()),
        ("out_data".into(), output.data.clone()),
    ];
    let params = if rom {
        vec![("ROM_DIR".into(), id("ROM_DIR"))]
    } else {
        vec![]
    };
    m.items.push(Item::Blank);
    m.items.push(Item::Inst {
        module,
        params,
        name,
        conns,
    });
}

/// Stream ports of the core and top.
fn axis_ports(m: &mut Module, in_bits: u32, out_bits: u32) {
    m.input(names::CLK, 1);
    m.input(names::RST, 1);
    m.input(names::S_TVALID, 1);
    m.output(names::S_TREADY, 1);
    m.input(names::S_TDATA, in_bits);
    m.output(names::M_TVALID, 1);
    m.input(names::M_TREADY, 1);
    m.output(names::M_TDATA, out_bits);
}

/// The beat a layer's window unit consumes: `SIMD` input elements (channels, or values of the
/// flattened input for a dense layer) with their input steps.
pub fn swg_beat(ctx: &LayerCtx) -> Beat {
    Beat {
        elems: ctx.fold.simd,
        steps: ctx.geo.input_steps,
        bits: ctx.geo.input_bits,
    }
}

/// The beat a layer's output stream carries: `PE` channels with their output steps.
pub fn out_beat(ctx: &LayerCtx) -> Beat {
    Beat {
        elems: ctx.fold.pe,
        steps: ctx.out_steps(),
        bits: ctx.out_value_bits(),
    }
}

/// A width converter as the core instantiates it: module name and output beat width.
pub type Converter = (String, u32);

/// The core: layers and head chained; `tapL_valid`/`tapL_data` show every beat of layer L's
/// output stream. Each layer is `[width converters] → window unit → MVU → [reorder] → [pool]`;
/// `converters[l]` names layer `l`'s converters with the width of their output beats.
pub fn core(
    layers: &[LayerCtx],
    names: &Names,
    converters: &[Vec<Converter>],
    in_bits: u32,
    out_bits: u32,
) -> Module {
    let mut m = Module::new(
        names.core(),
        vec![format!(
            "Network core: {} layers and the GAP/argmax head, with one tap per layer.",
            layers.len()
        )],
    );
    m.params
        .push(("ROM_DIR".into(), Expr::Str(crate::ROM_DIR_DEFAULT.into())));
    axis_ports(&mut m, in_bits, out_bits);
    for ctx in layers {
        m.output(&tap_valid(ctx.index), 1);
        m.output(&tap_data(ctx.index), ctx.out_beat_bits());
    }
    let mut prev = Stream {
        valid: id(names::S_TVALID),
        ready: id(names::S_TREADY),
        data: id(names::S_TDATA),
    };
    for ctx in layers {
        let l = ctx.index;
        m.comment(format!("Layer {l}: {}", ctx.layer.name));
        for (k, (conv, width)) in converters[l].iter().enumerate() {
            let next = stream(&mut m, &format!("l{l}_dwc{k}"), *width);
            instance(
                &mut m,
                conv.clone(),
                format!("u_l{l}_dwc{k}"),
                false,
                &prev,
                &next,
            );
            prev = next;
        }
        let win = stream(&mut m, &format!("l{l}_win"), ctx.in_word_bits());
        let syn = ctx
            .layer
            .pool
            .map(|_| stream(&mut m, &format!("l{l}_syn"), ctx.group_bits()));
        let out = stream(&mut m, &format!("l{l}_out"), ctx.out_beat_bits());
        instance(
            &mut m,
            names.layer_module(l, "swg"),
            format!("u_l{l}_swg"),
            false,
            &prev,
            &win,
        );
        let neurons = syn.as_ref().unwrap_or(&out);
        // With MMV > 1 the MVU's beats (a fold of several positions) go through the reorder
        // unit.
        let wide =
            (ctx.fold.mmv > 1).then(|| stream(&mut m, &format!("l{l}_mmv"), ctx.mvu_out_bits()));
        instance(
            &mut m,
            names.layer_module(l, "mvu"),
            format!("u_l{l}_mvu"),
            true,
            &win,
            wide.as_ref().unwrap_or(neurons),
        );
        if let Some(w) = &wide {
            instance(
                &mut m,
                names.layer_module(l, "reorder"),
                format!("u_l{l}_reorder"),
                false,
                w,
                neurons,
            );
        }
        if let Some(s) = &syn {
            instance(
                &mut m,
                names.layer_module(l, "pool"),
                format!("u_l{l}_pool"),
                false,
                s,
                &out,
            );
        }
        m.assign(id(tap_valid(l)), out.valid.clone().and(out.ready.clone()));
        m.assign(id(tap_data(l)), out.data.clone());
        prev = out;
    }
    m.comment("Head");
    let result = Stream {
        valid: id(names::M_TVALID),
        ready: id(names::M_TREADY),
        data: id(names::M_TDATA),
    };
    instance(&mut m, names.head(), "u_head".into(), false, &prev, &result);
    m
}

/// `window` for convolutions, `dense` for dense layers: what the window unit walks.
pub fn front_kind(ctx: &LayerCtx) -> &'static str {
    match ctx.layer.synapse {
        spikeforge_model::ir::Synapse::Dense { .. } => "dense",
        spikeforge_model::ir::Synapse::Conv { .. } => "window",
    }
}

/// The synthesis top: the core without its taps.
pub fn top(layers: &[LayerCtx], names: &Names, in_bits: u32, out_bits: u32) -> Module {
    let mut m = Module::new(
        names.top(),
        vec![
            "Top: pixels in on s_axis (raster order), class and logits out on m_axis.".into(),
            "Layouts and timing are in manifest.json.".into(),
        ],
    );
    m.params
        .push(("ROM_DIR".into(), Expr::Str(crate::ROM_DIR_DEFAULT.into())));
    axis_ports(&mut m, in_bits, out_bits);
    let mut conns: Vec<(String, Expr)> = [
        names::CLK,
        names::RST,
        names::S_TVALID,
        names::S_TREADY,
        names::S_TDATA,
        names::M_TVALID,
        names::M_TREADY,
        names::M_TDATA,
    ]
    .iter()
    .map(|p| (p.to_string(), id(*p)))
    .collect();
    for ctx in layers {
        conns.push((tap_valid(ctx.index), Expr::Concat(vec![])));
        conns.push((tap_data(ctx.index), Expr::Concat(vec![])));
    }
    m.items.push(Item::Blank);
    m.items.push(Item::Comment(
        "The taps exist for co-simulation only.".into(),
    ));
    m.items
        .push(Item::Comment("verilator lint_off PINCONNECTEMPTY".into()));
    m.items.push(Item::Inst {
        module: names.core(),
        params: vec![("ROM_DIR".into(), id("ROM_DIR"))],
        name: "u_core".into(),
        conns,
    });
    m.items
        .push(Item::Comment("verilator lint_on PINCONNECTEMPTY".into()));
    m
}
