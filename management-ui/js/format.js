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
