// Decodes DICOM frames with the WASM codecs Cornerstone3D's dicom-image-loader uses, the way
// its decoders call them (shared/decoders/decode{JPEG2000,HTJ2K,JPEGLS,JPEGXL}.js and
// postProcessDecodedPixels in decodeImageFrameWorker.js), one long-lived process per check.
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on stdout, in order.
//   {"viewer": "cornerstone-5.6.8", "codec": "openjpeg", "data": "<base64 codestream>",
//    "pixel_representation": 0, "bits_allocated": 16, "bits_stored": 12}
//   -> {"ok": true, "ms": 12.3, "columns": 512, "rows": 512, "components": 1,
//       "bits": 12, "signed": false, "dtype": "uint16", "pixels": "<base64, little-endian>"}
//   -> {"ok": false, "error": "..."}
// {"versions": true} answers the codec packages each viewer uses, by name and version.
// Codec modules are instantiated before the first frame is timed; "ms" is the decoder's
// work for one frame (buffer in, decode, copy out, sign extension), as decodeTimeInMS counts.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";

const require = createRequire(import.meta.url);
// the files themselves: the packages' "exports" do not all name their dist/ files
const MODULES = fileURLToPath(new URL("./node_modules/", import.meta.url));

// viewer -> codec -> the npm alias package.json installs it under (the loader's own pins)
const PACKAGES = {
  "cornerstone-5.6.8": {
    openjpeg: "cs5.6.8-openjpeg/dist/openjpegwasm_decode.js",
    openjph: "cs5.6.8-openjph/dist/openjphjs.js",
    charls: "cs5.6.8-charls/dist/charlswasm_decode.js",
  },
  "cornerstone-5.14.0": {
    openjpeg: "cs5.14.0-openjpeg/dist/openjpegwasm_decode.js",
    openjph: "cs5.14.0-openjph/dist/openjphjs.js",
    charls: "cs5.14.0-charls/dist/charlswasm_decode.js",
    libjxl: "cs5.14.0-libjxl/dist/jpegxlwasm_decode.js",
  },
};
const DECODERS = {
  openjpeg: "J2KDecoder",
  openjph: "HTJ2KDecoder",
  charls: "JpegLSDecoder",
  libjxl: "JpegXLDecoder",
};

const modules = new Map();

async function codecModule(viewer, codec) {
  const key = `${viewer}/${codec}`;
  if (!modules.has(key)) {
    const entry = PACKAGES[viewer]?.[codec];
    if (!entry) throw new Error(`${viewer} has no ${codec} codec`);
    const file = `${MODULES}${entry}`;
    const factory = file.endsWith("jpegxlwasm_decode.js")
      ? (await import(file)).default // an ES module; the others are CommonJS
      : require(file);
    // a codec's own messages go to stderr: stdout carries the answers only
    const print = (text) => process.stderr.write(`${text}\n`);
    // the .wasm beside each .js, read here: the ES module build would fetch() a file: URL
    const wasmBinary = readFileSync(file.replace(/\.js$/, ".wasm"));
    modules.set(key, await factory({ print, printErr: print, wasmBinary }));
  }
  return modules.get(key);
}

function packageVersion(entry) {
  const root = entry.split("/")[0];
  const meta = JSON.parse(readFileSync(`${MODULES}${root}/package.json`, "utf8"));
  return `${meta.name}@${meta.version}`;
}

// getPixelData: more than 8 bits per sample gives 16-bit samples, else 8-bit
function typed(frameInfo, buffer, signed) {
  const wide = frameInfo.bitsPerSample > 8;
  const Type = wide ? (signed ? Int16Array : Uint16Array) : signed ? Int8Array : Uint8Array;
  return new Type(buffer.buffer, buffer.byteOffset, buffer.byteLength / (wide ? 2 : 1));
}

function decodeFrame(module, codec, request, bytes) {
  const isSigned = request.pixel_representation === 1;
  const decoder = new module[DECODERS[codec]]();
  try {
    const started = performance.now();
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    if (codec === "openjph") decoder.decodeSubResolution(0);
    else decoder.decode();
    const frameInfo = decoder.getFrameInfo();
    const decoded = decoder.getDecodedBuffer();
    const copy = new Uint8Array(decoded.length);
    copy.set(decoded);
    // JPEG 2000 and HTJ2K take the sign from the codestream; JPEG-LS and JPEG XL from the
    // header (isSignedPixelData: one component only, as of 5.14.0)
    let signed = codec === "openjpeg" || codec === "openjph" ? frameInfo.isSigned : isSigned;
    if (frameInfo.componentCount !== 1 && request.viewer !== "cornerstone-5.6.8") signed = false;
    const pixels = typed(frameInfo, copy, signed);
    if (isSigned && request.bits_stored !== undefined) {
      const shift = 32 - request.bits_stored; // postProcessDecodedPixels' sign extension
      for (let i = 0; i < pixels.length; i++) pixels[i] = (pixels[i] << shift) >> shift;
    }
    const ms = performance.now() - started;
    return {
      ok: true,
      ms,
      columns: frameInfo.width,
      rows: frameInfo.height,
      components: frameInfo.componentCount,
      bits: frameInfo.bitsPerSample,
      signed: Boolean(frameInfo.isSigned),
      dtype: pixels.constructor.name.replace("Array", "").toLowerCase(),
      pixels: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength).toString("base64"),
    };
  } finally {
    decoder.delete?.();
  }
}

function message(error) {
  if (typeof error === "number") return `codec exception ${error}`;
  return String(error?.message ?? error);
}

async function answer(line) {
  const request = JSON.parse(line);
  if (request.versions) {
    try {
    const versions = {};
    for (const [viewer, codecs] of Object.entries(PACKAGES)) {
      versions[viewer] = Object.fromEntries(
        Object.entries(codecs).map(([codec, entry]) => [codec, packageVersion(entry)]),
      );
    }
      return { ok: true, versions };
    } catch (error) {
      return { ok: false, error: message(error) };
    }
  }
  try {
    const module = await codecModule(request.viewer, request.codec);
    return decodeFrame(module, request.codec, request, Buffer.from(request.data, "base64"));
  } catch (error) {
    return { ok: false, error: message(error) };
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim()) process.stdout.write(`${JSON.stringify(await answer(line))}\n`);
}
