//! Mini-batches and their augmentation: random shifts, flips and erasing.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::Split;

use super::*;

/// One augmented batch.
pub(super) fn gather(
    split: &Split,
    idx: &[usize],
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<u8>) {
    let (h, w, c) = (
        split.shape.0 as usize,
        split.shape.1 as usize,
        split.shape.2 as usize,
    );
    let mut images = Vec::with_capacity(idx.len() * h * w * c);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        let start = images.len();
        shift_and_flip(split.image(i), (h, w, c), cfg, rng, &mut images);
        // Framed events: every frame of a sample moves alike (erasing is refused for them).
        labels.push(split.labels[i]);
        // Off draws nothing, so runs without erasing keep their random stream.
        if cfg.erase > 0.0 && rng.gen::<f32>() < cfg.erase {
            random_erase(&mut images[start..], (h, w, c), rng);
        }
    }
    (images, labels)
}

/// Appends `img` (one image, or a sample's frames one after the other) to `out`, every frame
/// shifted by the same up to `cfg.shift` pixels (zeros come in) and flipped horizontally with
/// probability ½ when `cfg.flip`.
fn shift_and_flip(
    img: &[u8],
    (h, w, c): (usize, usize, usize),
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<u8>,
) {
    if cfg.shift == 0 && !cfg.flip {
        out.extend_from_slice(img);
        return;
    }
    let s = cfg.shift as isize;
    let (dy, dx) = if s > 0 {
        (rng.gen_range(-s..=s), rng.gen_range(-s..=s))
    } else {
        (0, 0)
    };
    let flip = cfg.flip && rng.gen_bool(0.5);
    for frame in img.chunks(h * w * c) {
        for y in 0..h as isize {
            for x in 0..w as isize {
                let sx = if flip { w as isize - 1 - x } else { x } + dx;
                let sy = y + dy;
                for ch in 0..c {
                    let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                        frame[(sy as usize * w + sx as usize) * c + ch]
                    } else {
                        0
                    };
                    out.push(v);
                }
            }
        }
    }
}

/// Random erasing (Zhong et al., AAAI 2020, with their defaults, the aspect drawn log-uniform as
/// torchvision's `RandomErasing` does): a rectangle of 2–40 % of the
/// image's area and aspect ratio 0.3–3.3 at a random place, every pixel of it replaced by
/// uniform noise. A drawn rectangle that does not fit is drawn again (at most 100 times, then
/// the image stays as it is).
pub fn random_erase(img: &mut [u8], (h, w, c): (usize, usize, usize), rng: &mut ChaCha8Rng) {
    const AREA: (f64, f64) = (0.02, 0.4);
    const ASPECT_MIN: f64 = 0.3;
    for _ in 0..100 {
        let area = rng.gen_range(AREA.0..AREA.1) * (h * w) as f64;
        // Log-uniform, so tall and wide are equally likely.
        let aspect = rng.gen_range(ASPECT_MIN.ln()..-ASPECT_MIN.ln()).exp();
        let eh = (area * aspect).sqrt().round() as usize;
        let ew = (area / aspect).sqrt().round() as usize;
        if eh == 0 || ew == 0 || eh >= h || ew >= w {
            continue;
        }
        let (y0, x0) = (rng.gen_range(0..=h - eh), rng.gen_range(0..=w - ew));
        for y in y0..y0 + eh {
            let row = &mut img[(y * w + x0) * c..(y * w + x0 + ew) * c];
            rng.fill(row);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The bounding box of the pixels that differ between `a` and `b` (h × w × 1 images).
    fn changed_box(a: &[u8], b: &[u8], w: usize) -> Option<(usize, usize, usize, usize)> {
        let diff: Vec<(usize, usize)> = (0..a.len())
            .filter(|&i| a[i] != b[i])
            .map(|i| (i / w, i % w))
            .collect();
        let ys = diff.iter().map(|d| d.0);
        let xs = diff.iter().map(|d| d.1);
        Some((ys.clone().min()?, ys.max()?, xs.clone().min()?, xs.max()?))
    }

    #[test]
    fn random_erase_overwrites_one_rectangle_of_the_stated_size_and_nothing_else() {
        let (h, w) = (28, 28);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut areas = Vec::new();
        for _ in 0..200 {
            // A constant image: noise differs from it almost everywhere in the rectangle.
            let before = vec![128u8; h * w];
            let mut img = before.clone();
            random_erase(&mut img, (h, w, 1), &mut rng);
            let (y0, y1, x0, x1) = changed_box(&before, &img, w).expect("something erased");
            let (eh, ew) = (y1 - y0 + 1, x1 - x0 + 1);
            let changed = img.iter().filter(|&&v| v != 128).count();
            // Outside the box nothing moved; inside, noise equals 128 only by chance.
            assert!(changed * 100 >= eh * ew * 95, "{changed} of {eh}×{ew}");
            let area = (eh * ew) as f64 / (h * w) as f64;
            assert!((0.01..=0.45).contains(&area), "area {area}");
            let aspect = eh as f64 / ew as f64;
            assert!((0.2..=5.0).contains(&aspect), "aspect {aspect}");
            areas.push(area);
        }
        let mean = areas.iter().sum::<f64>() / areas.len() as f64;
        assert!(
            (0.16..0.26).contains(&mean),
            "mean area {mean}, uniform 0.02–0.4 gives 0.21"
        );
    }

    #[test]
    fn erasing_changes_each_image_in_one_rectangle_and_off_changes_nothing() {
        let (n, h, w) = (6, 28, 28);
        let split = Split {
            images: vec![128; n * h * w],
            labels: (0..n as u8).collect(),
            shape: (h as u32, w as u32, 1),
            steps: 1,
        };
        let idx: Vec<usize> = (0..n).collect();
        let batch = |erase: f32| {
            let cfg = TrainConfig {
                erase,
                ..TrainConfig::default()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let b = gather(&split, &idx, &cfg, &mut rng);
            (b, rng.gen::<u64>())
        };
        // Without shift, flip or erasing the batch is the images, and no random number is drawn.
        let ((images, labels), next) = batch(0.0);
        assert_eq!((&images, &labels), (&split.images, &split.labels));
        assert_eq!(next, ChaCha8Rng::seed_from_u64(3).gen::<u64>());
        let ((erased, erased_labels), _) = batch(1.0);
        assert_eq!(erased_labels, split.labels);
        for (k, (a, b)) in split
            .images
            .chunks(h * w)
            .zip(erased.chunks(h * w))
            .enumerate()
        {
            let (y0, y1, x0, x1) = changed_box(a, b, w).expect("every image erased");
            let changed = a.iter().zip(b).filter(|(p, q)| p != q).count();
            let boxed = (y1 - y0 + 1) * (x1 - x0 + 1);
            assert!(
                changed * 100 >= boxed * 95,
                "image {k}: {changed} of {boxed}"
            );
        }
    }
}
