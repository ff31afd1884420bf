//! Image files: IDX (`*-idx3-ubyte`, optionally gzipped, as MNIST ships) or raw bytes
//! (concatenated images, `H·W·C` bytes each, raster order, channels fastest). IDX images are
//! 8-bit and reach a model with narrower pixels as their top bits; raw bytes are taken as the
//! model takes them (each value in the low `pixel_bits`, as over the serial line).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use spikeforge_model::ir::InputSpec;

/// Reads images for a model with input `input` whose images have `image_len` bytes; returns
/// the bytes and count.
pub fn read_images(
    path: &Path,
    input: &InputSpec,
    image_len: usize,
    limit: Option<usize>,
) -> Result<(Vec<u8>, usize)> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let data = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
        out
    } else {
        raw
    };
    let pixels =
        if data.len() >= 4 && data[0] == 0 && data[1] == 0 && data[2] == 0x08 && data[3] == 3 {
            let mut pixels = parse_idx3(&data, image_len)
                .with_context(|| format!("{}: bad IDX image file", path.display()))?;
            input.quantise_image(&mut pixels);
            pixels
        } else {
            data
        };
    if pixels.is_empty() || pixels.len() % image_len != 0 {
        bail!(
            "{}: {} bytes is not a whole number of images of {} bytes (the model's height × width × channels); \
             give raw images of exactly that size, or an IDX image file",
            path.display(),
            pixels.len(),
            image_len
        );
    }
    let mut n = pixels.len() / image_len;
    if let Some(l) = limit {
        n = n.min(l);
    }
    let pixels = &pixels[..n * image_len];
    if let Some(k) = input.first_out_of_range(pixels) {
        bail!(
            "{}: image {}, byte {}: value {} exceeds the model's {}-bit pixels (raw images hold \
             values as the model takes them; give an IDX file for 8-bit images)",
            path.display(),
            k / image_len,
            k % image_len,
            pixels[k],
            input.pixel_bits
        );
    }
    Ok((pixels.to_vec(), n))
}

fn parse_idx3(data: &[u8], image_len: usize) -> Result<Vec<u8>> {
    if data.len() < 16 {
        bail!("header truncated ({} bytes, need 16)", data.len());
    }
    let dim = |i: usize| {
        u32::from_be_bytes([
            data[4 + 4 * i],
            data[5 + 4 * i],
            data[6 + 4 * i],
            data[7 + 4 * i],
        ]) as usize
    };
    let (n, h, w) = (dim(0), dim(1), dim(2));
    if h * w != image_len {
        bail!(
            "images are {h}×{w} = {} bytes, the model expects {image_len}",
            h * w
        );
    }
    let need = 16 + n * h * w;
    if data.len() < need {
        bail!(
            "truncated: header promises {n} images ({need} bytes), file has {} bytes",
            data.len()
        );
    }
    Ok(data[16..need].to_vec())
}
