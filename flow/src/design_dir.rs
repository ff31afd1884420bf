//! The design directory, read and written in one place: `spikeforge gen` writes the RTL, the
//! manifest and the model that hdl-gen generates together with the flow scripts planned here
//! (Yosys scripts, `Makefile`, FuseSoC core); `cosim` and `synth` read it back.

use std::collections::BTreeMap;
use std::path::Path;

use spikeforge_hdl_gen::{Design, Manifest, SourceFiles};
use spikeforge_model::IoError;

use crate::{plan, FlowError};

/// A generated design with its flow scripts added: the files `write` puts in the directory.
pub fn complete(mut design: Design) -> Result<Design, FlowError> {
    add_flow_files(&design.manifest, &mut design.files)?;
    Ok(design)
}

/// Writes a design and its flow scripts into `dir` atomically: everything goes to a temporary
/// directory beside it, which replaces `dir` only when complete. A failure leaves no partial
/// `dir`.
pub fn write(design: &Design, dir: &Path) -> Result<(), FlowError> {
    let mut files = design.files.clone();
    add_flow_files(&design.manifest, &mut files)?;
    spikeforge_model::io::replace_dir(dir, ".spikeforge-gen-", |tmp| {
        for (name, text) in &files {
            let p = tmp.join(name);
            std::fs::write(&p, text).map_err(IoError::at(&p))?;
        }
        Ok::<_, FlowError>(())
    })
}

/// The manifest of a directory written by `spikeforge gen`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, FlowError> {
    let mpath = dir.join("manifest.json");
    let text = std::fs::read_to_string(&mpath).map_err(|e| FlowError::Design {
        path: mpath.clone(),
        message: format!("{e} (is this a directory written by `spikeforge gen`?)"),
    })?;
    serde_json::from_str(&text).map_err(|e| FlowError::Design {
        path: mpath,
        message: e.to_string(),
    })
}

/// A design read back from a directory written by `spikeforge gen`: its manifest and the
/// sources and ROM images it names.
pub fn read(dir: &Path) -> Result<(Manifest, SourceFiles), FlowError> {
    let manifest = read_manifest(dir)?;
    let mut files = Vec::new();
    for name in manifest.sources.iter().chain(&manifest.rom_files) {
        let p = dir.join(name);
        files.push((name.clone(), std::fs::read(&p).map_err(IoError::at(&p))?));
    }
    Ok((manifest, files))
}

/// Yosys scripts, `Makefile` and FuseSoC core file: every device target with the shell as
/// top (pins left to the placer), plus the board's own target.
fn add_flow_files(m: &Manifest, files: &mut BTreeMap<String, String>) -> Result<(), FlowError> {
    let board = match &m.board {
        None => None,
        Some(bm) => Some(
            spikeforge_constraints::board(&bm.name)
                .ok_or_else(|| FlowError::UnknownBoard(bm.name.clone()))?,
        ),
    };
    let header = &m.header_lines();
    let mut plans: Vec<plan::Plan> = spikeforge_constraints::devices()
        .iter()
        .map(|d| plan::plan(d, None, None, &m.shell.top, &m.sources, m.folding.dsp))
        .collect();
    let mut board_targets = Vec::new();
    if let (Some(b), Some(bm)) = (board, &m.board) {
        let device = spikeforge_constraints::device(&b.target)
            .expect("boards name known devices (checked by a test)");
        plans.push(plan::plan(
            device,
            Some(b),
            bm.pll.as_ref().map(|p| p.clock_hz),
            &bm.top,
            &m.sources,
            m.folding.dsp,
        ));
        board_targets.push((b, device, bm.top.clone()));
    }
    for p in &plans {
        let text: String = header.iter().map(|l| format!("# {l}\n")).collect();
        files.insert(p.script_file.clone(), text + &p.script);
    }
    files.insert("Makefile".into(), plan::makefile(&plans, header));
    let core_name = m.top.clone();
    files.insert(
        format!("{core_name}.core"),
        plan::fusesoc_core(
            &core_name,
            &format!("spikeforge network {} ({})", m.model_name, m.generator),
            &m.sources,
            &m.rom_files,
            &m.top,
            &board_targets,
        ),
    );
    Ok(())
}
