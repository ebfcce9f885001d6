import ArgumentParser
import Foundation
import ZOTuneBackend

/// `zotune bench kernels`: throughput of the perturbation-stream kernels next to the memory
/// ceilings measured in the same run, and GEMM GFLOP/s.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time perturb / restore_update / fill_normal, memory copy and sgemm on the selected device."
    )

    @OptionGroup var options: DeviceOptions

    @Option(help: "Elements per perturbation buffer, a multiple of 4096 (default 16M: 64 MiB of f32, beyond the caches).")
    var elements: Int = 1 << 24

    @Option(help: "Timed repetitions per kernel (the median is reported).")
    var repeats: Int = 7

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        // The Jaguar pass views a buffer as rows of 4096; four buffers (f32 ×3, bf16) hold 14 bytes an element.
        guard elements >= 4096 && elements % 4096 == 0 else { throw ValidationError("--elements must be a positive multiple of 4096 (got \(elements))") }
        guard elements <= Int(ProcessInfo.processInfo.physicalMemory / 14) else {
            throw ValidationError("--elements \(elements): its buffers (14 bytes an element) exceed this machine's \(formatBytes(Int(ProcessInfo.processInfo.physicalMemory))) of memory")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
    }

    func run() throws {
        let backend = try options.backend(quiet: json)
        var results: [(key: String, value: Double)] = []
        func record(_ key: String, _ value: Double) { results.append((key, value)) }
        func say(_ line: String) { if !json { print(line) } }

        say(backend.summary)
        let n = elements
        let f32a = try backend.allocate([n], dtype: .f32, tag: .scratch)
        let f32b = try backend.allocate([n], dtype: .f32, tag: .scratch)
        let bf16 = try backend.allocate([n], dtype: .bf16, tag: .scratch)
        let seed: UInt64 = 0x5EED, tid: UInt32 = 17

        // Ceilings: a parallel device copy (read + write) and an in-place f32 scale (read + write).
        let copy = backend.medianSeconds(repeats) { backend.copy(f32b, from: f32a) }
        let copyGBps = Double(2 * 4 * n) / copy / 1e9
        record("copy_gbps", copyGBps)
        let inplace = backend.medianSeconds(repeats) { backend.scale(f32a, f32a, by: 1.0) }
        record("inplace_f32_elems_per_s", Double(n) / inplace)
        say(label("copy f32 (device to device)") + String(format: "%9.2f GB/s read+write", copyGBps))
        say(label("in-place scale f32") + String(format: "%9.1f M el/s %8.2f GB/s", Double(n) / inplace / 1e6, Double(8 * n) / inplace / 1e9))

        func stream(_ name: String, key: String, bytesPerElement: Int, _ body: () -> Void) {
            let t = backend.medianSeconds(repeats, body)
            let rate = Double(n) / t
            let gbps = Double(bytesPerElement * n) / t / 1e9
            record(key + "_elems_per_s", rate)
            record(key + "_gbps", gbps)
            say(label(name) + String(format: "%9.1f M el/s %8.2f GB/s  %5.1f%% of copy, %5.1f%% of in-place scale", rate / 1e6, gbps, 100 * gbps / copyGBps, 100 * rate * inplace / Double(n)))
        }
        stream("perturb f32", key: "perturb_f32", bytesPerElement: 8) {
            backend.perturb(f32a, seed: seed, tensorId: tid, stream: 0, scale: 1e-3)
        }
        stream("restore_update f32", key: "update_f32", bytesPerElement: 8) {
            backend.restoreUpdate(f32a, seed: seed, tensorId: tid, stream: 0, restore: 1e-3, step: 2e-3, decay: 1e-6)
        }
        stream("perturb bf16", key: "perturb_bf16", bytesPerElement: 4) {
            backend.perturb(bf16, seed: seed, tensorId: tid, stream: 0, scale: 1e-3)
        }
        stream("restore_update bf16", key: "update_bf16", bytesPerElement: 4) {
            backend.restoreUpdate(bf16, seed: seed, tensorId: tid, stream: 0, restore: 1e-3, step: 2e-3, decay: 1e-6)
        }
        stream("fill_normal f32", key: "fill_normal_f32", bytesPerElement: 4) {
            backend.fillNormal(f32b, seed: seed, tensorId: tid, stream: 0, scale: 1)
        }
        // The fused optimizer updates (θ f32 plus f32 state: momentum 16, Adam 24, HiZOO 16 bytes
        // per element read + written) and HiZOO's probe (θ read + written, H read).
        let v = try backend.allocate([n], dtype: .f32, tag: .scratch)
        backend.scale(f32b, f32b, by: 0)
        backend.convert(into: v, from: f32b)
        var s = ZOUpdateScalars()
        (s.restore, s.g, s.lr, s.beta1, s.beta2, s.adamEps, s.bc2Sqrt, s.curvature, s.keep) = (1e-3, 0.5, 1e-4, 0.9, 0.999, 1e-8, 0.03, 1e-6, 1)
        stream("zo_update momentum f32", key: "zo_momentum_f32", bytesPerElement: 16) {
            backend.zoUpdate(.momentum, f32a, state1: f32b, state2: nil, seed: seed, tensorId: tid, stream: 0, scalars: s)
        }
        stream("zo_update adam f32", key: "zo_adam_f32", bytesPerElement: 24) {
            backend.zoUpdate(.adam, f32a, state1: f32b, state2: v, seed: seed, tensorId: tid, stream: 0, scalars: s)
        }
        backend.fillNormal(f32b, seed: 3, tensorId: 3, stream: 0, scale: 0.01)
        backend.mul(f32b, f32b, f32b)   // H > 0 for HiZOO
        stream("perturb_hessian f32", key: "perturb_hessian_f32", bytesPerElement: 12) {
            backend.perturbHessian(f32a, h: f32b, seed: seed, tensorId: tid, stream: 0, scale: 1e-3)
        }
        stream("zo_update hizoo f32", key: "zo_hizoo_f32", bytesPerElement: 16) {
            backend.zoUpdate(.hizoo, f32a, state1: f32b, state2: nil, seed: seed, tensorId: tid, stream: 0, scalars: s)
        }

        // The matrix optimizers' passes: ZO-Muon's fused restore + momentum on a given direction
        // (θ, buf read + written, D read), applying a direction, and Jaguar's dense sign pass on a
        // 4096-column view with 10 % of rows and columns probed.
        backend.scale(f32b, f32b, by: 0)
        stream("zo_update direction f32", key: "zo_direction_f32", bytesPerElement: 20) {
            backend.zoUpdate(.direction, f32a, state1: f32b, state2: v, seed: seed, tensorId: tid, stream: 0, scalars: s)
        }
        stream("add_scaled bf16", key: "add_scaled_bf16", bytesPerElement: 8) {
            backend.addScaled(bf16, v, alpha: -1e-4)
        }
        let matrixView = f32a.reshaped([n / 4096, 4096])
        let selection = JaguarSelection(shape: matrixView.shape, fraction: 0.1, signs: true)
        var js = JaguarScalars()
        (js.restore, js.g, js.beta, js.lr) = (1e-3, 0.5, 0.01, 1e-4)
        stream("jaguar sign pass f32", key: "jaguar_sign_f32", bytesPerElement: 16) {
            backend.jaguarUpdate(.sign, matrixView, state: f32b, selection, seed: seed, tensorId: tid, scalars: js)
        }

        for size in [512, 1024, 2048] {
            let a = try backend.allocate([size, size], tag: .scratch)
            let b = try backend.allocate([size, size], tag: .scratch)
            let c = try backend.allocate([size, size], tag: .scratch)
            backend.fillNormal(a, seed: 1, tensorId: 1, stream: 0, scale: 1)
            backend.fillNormal(b, seed: 1, tensorId: 2, stream: 0, scale: 1)
            let t = backend.medianSeconds(size >= 2048 ? max(3, repeats / 2) : repeats) {
                backend.matmul(c, a, transposeA: false, b, transposeB: false, alpha: 1, beta: 0)
            }
            let gflops = 2 * pow(Double(size), 3) / t / 1e9
            record("sgemm_\(size)_gflops", gflops)
            say(label("sgemm \(size)") + String(format: "%9.1f GFLOP/s", gflops))
        }

        // Newton–Schulz on SmolLM2's matrix shapes, 10 iterations, against the rate of its largest
        // GEMM alone, (r × r)·(r × n), timed in the same run. FLOPs: 4r²n + 2r³ per quintic
        // iteration, 4r²n per cubic one (r = min, n = max).
        for (rows, cols) in [(576, 576), (576, 1536), (192, 576)] {
            let x = try backend.allocate([rows, cols], tag: .scratch)
            let out = try backend.allocate([rows, cols], tag: .scratch)
            backend.fillNormal(x, seed: 9, tensorId: UInt32(rows), stream: 0, scale: 1)
            let ws = try backend.allocate([newtonSchulzWorkspace(rows: rows, cols: cols)], tag: .scratch)
            let (r, m) = (min(rows, cols), max(rows, cols))
            let a = try backend.allocate([r, r], tag: .scratch), c = try backend.allocate([r, m], tag: .scratch)
            backend.fillNormal(a, seed: 2, tensorId: 2, stream: 0, scale: 1)
            let tg = backend.medianSeconds(repeats) {
                backend.matmul(c, a, transposeA: false, x.reshaped([r, m]), transposeB: false, alpha: 1, beta: 0)
            }
            let gemmGflops = 2 * Double(r * r * m) / tg / 1e9
            record("sgemm_\(r)x\(r)x\(m)_gflops", gemmGflops)
            for p in NewtonSchulz.allCases {
                let t = backend.medianSeconds(max(3, repeats / 2)) {
                    backend.newtonSchulz(out, from: x, p, steps: 10, workspace: ws, bf16: backend.device == .cuda)
                }
                let gflops = 10 * p.flopsPerIteration(rows: rows, cols: cols) / t / 1e9
                record("ns_\(p.rawValue)_\(rows)x\(cols)_gflops", gflops)
                record("ns_\(p.rawValue)_\(rows)x\(cols)_ms", t * 1e3)
                say(label("NS \(p.rawValue) \(rows)×\(cols) ×10") + String(format: "%9.1f GFLOP/s %8.2f ms  %5.1f%% of its sgemm (%.1f GFLOP/s)",
                                                                             gflops, t * 1e3, 100 * gflops / gemmGflops, gemmGflops))
            }
        }

        // Mixed precision (bf16 weights; tensor cores on CUDA, the exact emulation on the CPU).
        do {
            let size = 2048
            let a = try backend.allocate([size, size], tag: .scratch), c = try backend.allocate([size, size], tag: .scratch)
            let w = try backend.allocate([size, size], dtype: .bf16, tag: .scratch)
            backend.fillNormal(a, seed: 1, tensorId: 1, stream: 0, scale: 1)
            backend.fillNormal(w, seed: 1, tensorId: 2, stream: 0, scale: 0.02)
            let ws = try backend.allocate([backend.mixedWorkspaceBytes(m: size, n: size, k: size)], dtype: .u8, tag: .scratch)
            let t = backend.medianSeconds(max(3, repeats / 2)) { backend.matmulMixed(c, a, weight: w, transposeB: true, workspace: ws) }
            let gflops = 2 * pow(Double(size), 3) / t / 1e9
            record("gemm_mixed_bf16_\(size)_gflops", gflops)
            say(label("gemm mixed bf16 \(size)") + String(format: "%9.1f GFLOP/s%@", gflops, backend.device == .cpu ? " (CPU: emulation)" : ""))
        }

        // The same keys on every device: the CPU's nominal FMA peak (an estimate), null on a GPU.
        let nominalPeak = backend.device == .cpu ? CPUInfo.nominalPeakGflops : nil
        if let peak = nominalPeak {
            say(label("nominal f32 FMA peak") + String(format: "%9.1f GFLOP/s (cores × clock × FMA width; an estimate)", peak))
        }

        if json {
            var fields = results.map { "\"\($0.key)\": \(jsonNumber($0.value))" }
            fields.insert("\"device\": \"\(backend.device)\"", at: 0)
            fields.insert("\"summary\": \"\(backend.summary.replacingOccurrences(of: "\"", with: "'"))\"", at: 1)
            fields.append("\"elements\": \(n)")
            fields.append("\"nominal_peak_gflops\": \(nominalPeak.map(jsonNumber) ?? "null")")
            print("{" + fields.joined(separator: ", ") + "}")
        } else {
            let env = ProcessInfo.processInfo.environment
            print("OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "(unset)") OPENBLAS_L2_SIZE=\(env["OPENBLAS_L2_SIZE"] ?? "(unset)")")
        }
    }
}

func label(_ name: String) -> String { name.padding(toLength: 30, withPad: " ", startingAt: 0) }


func jsonNumber(_ x: Double) -> String {
    x.isFinite ? String(format: x.magnitude >= 1e4 || x == x.rounded() ? "%.0f" : "%.4g", x) : "null"
}
