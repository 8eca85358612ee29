// Segmentation maps as NumPy .npy files (format 1.0, little-endian int32, C order), the form
// FastComposer's data set uses and src/train/data/npy.ts reads.

/** The bytes of an .npy file holding `labels` as an int32 array of shape [height, width]. */
export function encodeNpyInt32(labels: Int32Array, height: number, width: number): Uint8Array {
  if (labels.length !== height * width) throw new RangeError(`npy: ${labels.length} values do not make a ${height}×${width} map`);
  let header = `{'descr': '<i4', 'fortran_order': False, 'shape': (${height}, ${width}), }`;
  // The preamble (10 bytes) plus the header, ending in a newline, fills a multiple of 64 bytes.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const bytes = new Uint8Array(total + 4 * labels.length);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const view = new DataView(bytes.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) bytes[10 + i] = header.charCodeAt(i);
  for (let i = 0; i < labels.length; i++) view.setInt32(total + 4 * i, labels[i]!, true);
  return bytes;
}
