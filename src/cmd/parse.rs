//! clap value parsers for the numbers the commands take: each refuses a value outside its
//! range when the arguments are parsed, before any work or output, with a message that says
//! what the value must be.

/// A clap value parser for T: 1 up to the IR's limit, so that no command starts work on a T
/// its model could not hold.
pub fn time_steps() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=spikeforge_model::validate::MAX_TIME_STEPS as i64)
}

/// A clap value parser for counts that must be positive (epochs, images, batch size): zero
/// is refused when the arguments are parsed, before any work or output.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `--distill-weight`: the share of the loss, in [0, 1].
pub fn weight(s: &str) -> Result<f32, String> {
    number_in(s, |v: f32| (0.0..=1.0).contains(&v), "a weight in [0, 1]")
}

/// `--distill-temperature`: positive and finite.
pub fn temperature(s: &str) -> Result<f32, String> {
    number_in(
        s,
        |v: f32| v > 0.0 && v.is_finite(),
        "a positive finite temperature",
    )
}

/// `--erase`: the chance that an image gets a rectangle erased, so in [0, 1].
pub fn probability(s: &str) -> Result<f32, String> {
    number_in(
        s,
        |v: f32| (0.0..=1.0).contains(&v),
        "a probability in [0, 1]",
    )
}

/// A learning rate: positive and finite (0 would train nothing, a negative one ascends).
pub fn rate(s: &str) -> Result<f32, String> {
    number_in(
        s,
        |v: f32| v > 0.0 && v.is_finite(),
        "a positive finite learning rate",
    )
}

/// `--weight-decay`: finite and not negative.
pub fn non_negative(s: &str) -> Result<f32, String> {
    number_in(s, |v: f32| v >= 0.0 && v.is_finite(), "a finite number ≥ 0")
}

/// The estimator's threshold and hysteresis: finite and not negative.
pub fn margin(s: &str) -> Result<f64, String> {
    number_in(s, |v: f64| v >= 0.0 && v.is_finite(), "a finite number ≥ 0")
}

/// `--ale-cap`: a fraction of the candidate layers, in [0, 1].
pub fn fraction(s: &str) -> Result<f64, String> {
    number_in(s, |v: f64| (0.0..=1.0).contains(&v), "a fraction in [0, 1]")
}

/// In [0, 1): `--label-smoothing` (a probability mass taken from the label) and `--momentum`.
pub fn below_one(s: &str) -> Result<f32, String> {
    number_in(s, |v: f32| (0.0..1.0).contains(&v), "in [0, 1)")
}

/// A number accepted only where `ok` holds; otherwise "{v} is not {what}". NaN fails every range.
fn number_in<T>(s: &str, ok: impl Fn(T) -> bool, what: &str) -> Result<T, String>
where
    T: std::str::FromStr + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let v: T = s.parse().map_err(|e| format!("`{s}`: {e}"))?;
    if ok(v) {
        Ok(v)
    } else {
        Err(format!("{v} is not {what}"))
    }
}

/// A share in percent, in (0, 100].
pub fn percent(s: &str) -> Result<f64, String> {
    number_in(
        s,
        |v: f64| v > 0.0 && v <= 100.0,
        "a percentage in (0, 100]",
    )
}

/// A clock frequency in MHz, above zero and at most 1 000.
pub fn positive_mhz(s: &str) -> Result<f64, String> {
    number_in(
        s,
        |v: f64| v > 0.0 && v <= 1000.0,
        "a frequency in MHz in (0, 1000]",
    )
}
