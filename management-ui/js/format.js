// Number formatting shared by every page: thousands separators, rates and sizes.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function count(n) {
  return integer.format(n ?? 0);
}

export function perSecond(n) {
  return `${rate.format(n ?? 0)}/s`;
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n ?? 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${rate.format(value)} ${units[unit]}`;
}

/** Milliseconds as "3d 4h", "5h 2m", "4m 10s" or "12s". */
export function duration(ms) {
  let s = Math.floor((ms ?? 0) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${hours}h`;
  if (hours) return `${hours}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** A timestamp in ms (or an ISO date) as the browser's local date and time. */
export function when(ms) {
  if (ms === undefined || ms === null) return "";
  return new Date(ms).toLocaleString();
}
