// Devices as libtorch spells them: 'cpu', 'cuda', 'cuda:1'.

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export function checkDevice(device: unknown): Device {
  if (typeof device === 'string' && /^(cpu|cuda(:\d+)?)$/.test(device)) return device as Device;
  throw new TypeError(`unknown device '${String(device)}'; expected 'cpu', 'cuda' or 'cuda:N'`);
}
