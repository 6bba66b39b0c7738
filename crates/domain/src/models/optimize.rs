//! A small BFGS minimiser with a backtracking line search, for the handful of parameters the
//! customer-base models have (fitted on the log scale, so they stay positive).

use super::ModelError;

/// Stopping rules.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_iterations: u32,
    /// Converged when every gradient component is below `gradient_tolerance * max(1, |f|)`.
    pub gradient_tolerance: f64,
    /// Longest move of any coordinate in one iteration.
    pub max_step: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_iterations: 1_000,
            gradient_tolerance: 1e-10,
            max_step: 1.0,
        }
    }
}

/// Where the minimiser stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: u32,
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f`, which returns the value at `x` and writes the gradient into its second
/// argument. Fails when `f` is not finite at the start.
pub fn bfgs<F>(mut f: F, x0: &[f64], options: &Options) -> Result<Minimum, ModelError>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::NotFinite);
    }
    // Inverse Hessian approximation, row-major.
    let identity = |h: &mut Vec<f64>| {
        h.iter_mut().for_each(|v| *v = 0.0);
        (0..n).for_each(|i| h[i * n + i] = 1.0);
    };
    let mut h = vec![0.0; n * n];
    identity(&mut h);
    let (mut x_new, mut g_new, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for iteration in 0..options.max_iterations {
        let scale = fx.abs().max(1.0);
        if g.iter()
            .all(|v| v.abs() <= options.gradient_tolerance * scale)
        {
            return Ok(Minimum {
                x,
                value: fx,
                iterations: iteration,
                converged: true,
            });
        }
        for i in 0..n {
            d[i] = -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>();
        }
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            identity(&mut h);
            d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
            slope = dot(&g, &d);
        }
        // No step moves any coordinate by more than `max_step`: on the log scale the
        // likelihoods lose all precision far from the optimum, and a long step there would
        // look like progress.
        let longest = d.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let mut step = if longest > options.max_step {
            options.max_step / longest
        } else {
            1.0
        };
        let mut accepted = false;
        for _ in 0..60 {
            x_new
                .iter_mut()
                .zip(&x)
                .zip(&d)
                .for_each(|((xn, xi), di)| *xn = xi + step * di);
            let f_new = f(&x_new, &mut g_new);
            if f_new.is_finite()
                && g_new.iter().all(|v| v.is_finite())
                && f_new <= fx + 1e-4 * step * slope
            {
                accepted = true;
                let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
                let sy = dot(&s, &y);
                if sy > 1e-300 {
                    let hy: Vec<f64> = (0..n)
                        .map(|i| (0..n).map(|j| h[i * n + j] * y[j]).sum())
                        .collect();
                    let yhy = dot(&y, &hy);
                    for i in 0..n {
                        for j in 0..n {
                            h[i * n + j] += (sy + yhy) * s[i] * s[j] / (sy * sy)
                                - (hy[i] * s[j] + s[i] * hy[j]) / sy;
                        }
                    }
                }
                let no_progress = (fx - f_new).abs() <= f64::EPSILON * scale;
                std::mem::swap(&mut x, &mut x_new);
                std::mem::swap(&mut g, &mut g_new);
                fx = f_new;
                if no_progress {
                    // Machine precision reached: the gradient cannot get meaningfully smaller.
                    let loose = g.iter().all(|v| v.abs() <= 1e-6 * scale);
                    return Ok(Minimum {
                        x,
                        value: fx,
                        iterations: iteration + 1,
                        converged: loose,
                    });
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            let loose = g.iter().all(|v| v.abs() <= 1e-6 * fx.abs().max(1.0));
            return Ok(Minimum {
                x,
                value: fx,
                iterations: iteration + 1,
                converged: loose,
            });
        }
    }
    Ok(Minimum {
        x,
        value: fx,
        iterations: options.max_iterations,
        converged: false,
    })
}

/// Wraps a value-only function with a central-difference gradient.
pub fn with_numeric_gradient<F>(mut f: F) -> impl FnMut(&[f64], &mut [f64]) -> f64
where
    F: FnMut(&[f64]) -> f64,
{
    move |x: &[f64], g: &mut [f64]| {
        let mut probe = x.to_vec();
        for i in 0..x.len() {
            let h = 1e-5 * x[i].abs().max(1.0);
            probe[i] = x[i] + h;
            let up = f(&probe);
            probe[i] = x[i] - h;
            let down = f(&probe);
            probe[i] = x[i];
            g[i] = (up - down) / (2.0 * h);
        }
        f(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_rosenbrock() {
        let rosenbrock = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let m = bfgs(rosenbrock, &[-1.2, 1.0], &Options::default()).unwrap();
        assert!(m.converged);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6,
            "{m:?}"
        );
    }

    #[test]
    fn numeric_gradients_find_a_quadratic_minimum() {
        let f = with_numeric_gradient(|x: &[f64]| {
            (x[0] - 3.0).powi(2) + 2.0 * (x[1] + 1.0).powi(2) + 5.0
        });
        let m = bfgs(
            f,
            &[0.0, 0.0],
            &Options {
                gradient_tolerance: 1e-8,
                ..Options::default()
            },
        )
        .unwrap();
        assert!(
            (m.x[0] - 3.0).abs() < 1e-5 && (m.x[1] + 1.0).abs() < 1e-5,
            "{m:?}"
        );
        assert!((m.value - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_non_finite_start_is_an_error() {
        let f = |_: &[f64], _: &mut [f64]| f64::NAN;
        assert_eq!(
            bfgs(f, &[1.0], &Options::default()).unwrap_err(),
            ModelError::NotFinite
        );
    }
}
