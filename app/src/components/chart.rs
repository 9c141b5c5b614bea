//! A stacked bar chart of usage per day and model, drawn as SVG by the app (readable without
//! JavaScript, with a table of the same numbers for screen readers).

use crate::api::models::UsageDay;
use leptos::prelude::*;

/// What the bars measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Tokens,
    Cost,
    Requests,
}

impl Metric {
    fn of(self, d: &UsageDay) -> f64 {
        match self {
            Metric::Tokens => d.tokens as f64,
            Metric::Cost => d.cost_usd,
            Metric::Requests => d.requests as f64,
        }
    }

    /// A value in words.
    pub fn show(self, v: f64) -> String {
        // An empty float sum is -0.0, which would print as "-0".
        let v = v + 0.0;
        match self {
            Metric::Cost if v < 0.01 && v > 0.0 => format!("${v:.4}"),
            Metric::Cost => format!("${v:.2}"),
            _ => compact(v),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Tokens => "tokens",
            Metric::Cost => "cost",
            Metric::Requests => "requests",
        }
    }
}

/// 1234 → "1.2k", 2_500_000 → "2.5M".
pub fn compact(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// Colours for models, in order (readable on light and dark backgrounds).
const COLORS: &[&str] = &[
    "#6366f1", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#a855f7", "#14b8a6", "#f97316",
];

/// Every day from `from` to `to` (`YYYY-MM-DD`), at most 366.
fn days_between(from: &str, to: &str) -> Vec<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let (Ok(mut day), Ok(end)) = (
        time::Date::parse(from, format),
        time::Date::parse(to, format),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while day <= end && out.len() < 366 {
        out.push(day.to_string());
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// A "nice" axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The chart.
#[component]
pub fn UsageChart(days: Vec<UsageDay>, from: String, to: String, metric: Metric) -> impl IntoView {
    let axis = days_between(&from, &to);
    let mut models: Vec<String> = days.iter().map(|d| d.model.clone()).collect();
    models.sort();
    models.dedup();
    let color = |model: &str| {
        let i = models.iter().position(|m| m == model).unwrap_or(0);
        COLORS[i % COLORS.len()]
    };
    let total_of = |day: &str| -> f64 {
        days.iter()
            .filter(|d| d.day == day)
            .map(|d| metric.of(d))
            .sum()
    };
    let top = nice_max(axis.iter().map(|d| total_of(d)).fold(0.0, f64::max));
    let (width, height, left, bottom, top_pad) = (720.0, 220.0, 48.0, 24.0, 8.0);
    let plot_h = height - bottom - top_pad;
    let slot = (width - left) / axis.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: f64| top_pad + plot_h - v / top * plot_h;
    let label_every = (axis.len() / 8).max(1);

    let grid = (0..=4)
        .map(|i| {
            let v = top * f64::from(i) / 4.0;
            let yy = y(v);
            view! {
                <g>
                    <line
                        x1=left
                        x2=width
                        y1=yy
                        y2=yy
                        class="stroke-slate-200 dark:stroke-slate-700"
                        stroke-width="1"
                    />
                    <text
                        x=left - 6.0
                        y=yy + 4.0
                        text-anchor="end"
                        class="fill-slate-500 text-[10px]"
                    >
                        {metric.show(v)}
                    </text>
                </g>
            }
        })
        .collect_view();
    let bars = axis
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let x = left + slot * i as f64 + (slot - bar) / 2.0;
            let mut base = 0.0;
            let segments = days
                .iter()
                .filter(|d| &d.day == day)
                .map(|d| {
                    let v = metric.of(d);
                    let (y0, y1) = (y(base), y(base + v));
                    base += v;
                    view! {
                        <rect x=x y=y1 width=bar height=(y0 - y1).max(0.0) fill=color(&d.model)>
                            <title>{format!("{day} · {}: {}", d.model, metric.show(v))}</title>
                        </rect>
                    }
                })
                .collect_view();
            let label = (i % label_every == 0).then(|| {
                view! {
                    <text
                        x=x + bar / 2.0
                        y=height - 6.0
                        text-anchor="middle"
                        class="fill-slate-500 text-[10px]"
                    >
                        {day.get(5..).unwrap_or(day).to_owned()}
                    </text>
                }
            });
            view! { <g data-day=day.clone()>{segments}{label}</g> }
        })
        .collect_view();
    let legend = models
        .iter()
        .map(|m| {
            view! {
                <li class="flex items-center gap-1">
                    <span
                        class="inline-block h-3 w-3 rounded-sm"
                        style=format!("background:{}", color(m))
                    ></span>
                    {m.clone()}
                </li>
            }
        })
        .collect_view();
    let summary = format!(
        "Usage by day and model ({}), {} to {}: {} in total.",
        metric.name(),
        from,
        to,
        metric.show(days.iter().map(|d| metric.of(d)).sum())
    );
    let rows = days
        .iter()
        .map(|d| {
            view! {
                <tr>
                    <td>{d.day.clone()}</td>
                    <td>{d.model.clone()}</td>
                    <td>{metric.show(metric.of(d))}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <figure class="space-y-2" data-chart=metric.name()>
            <svg
                viewBox=format!("0 0 {width} {height}")
                class="h-56 w-full"
                role="img"
                aria-label=summary.clone()
            >
                {grid}
                {bars}
            </svg>
            <figcaption>
                <ul class="flex flex-wrap gap-3 text-xs text-slate-600 dark:text-slate-400">
                    {legend}
                </ul>
            </figcaption>
            <details class="text-sm">
                <summary class="cursor-pointer text-slate-600 dark:text-slate-400">
                    "Show the numbers"
                </summary>
                <table class="table mt-2">
                    <thead>
                        <tr>
                            <th>"Day"</th>
                            <th>"Model"</th>
                            <th>{metric.name()}</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </details>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_rounded_and_days_listed() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1800.0), 2000.0);
        assert_eq!(nice_max(230.0), 250.0);
        assert_eq!(
            days_between("2026-02-27", "2026-03-02"),
            vec!["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
        );
        assert!(days_between("bad", "2026-03-02").is_empty());
        assert_eq!(compact(1234.0), "1.2k");
        assert_eq!(compact(2_500_000.0), "2.5M");
        assert_eq!(Metric::Cost.show(0.004), "$0.0040");
    }
}
