import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels

/// The decisions made before any kernel runs: which GPUs the CUDA library accepts, and what
/// `--dtype auto` / `--precision auto` become for a checkpoint on a device.
final class DeviceChoiceTests: XCTestCase {
    // The library holds sm_80/sm_90 code and compute_90 PTX only: V100 (7.0) and T4 (7.5) are refused
    // with a line naming the GPU and its capability; A100 (8.0), A10 (8.6), H100 (9.0) and newer pass.
    func testComputeCapabilityBelowSm80IsRefusedWithTheReason() {
        let cases: [(Int32, Int32, Bool)] = [(6, 1, false), (7, 0, false), (7, 5, false), (8, 0, true), (8, 6, true), (8, 9, true),
                                             (9, 0, true), (10, 0, true), (12, 0, true)]
        for (major, minor, ok) in cases {
            XCTAssertEqual(zt_cuda_capability_supported(major, minor) != 0, ok, "\(major).\(minor)")
            var buf = [CChar](repeating: 0, count: 256)
            let refused = zt_cuda_capability_message(0, "Tesla T4", major, minor, &buf, buf.count)
            XCTAssertEqual(refused == 0, ok, "\(major).\(minor)")
            let line = String(cString: buf)
            if ok {
                XCTAssertEqual(line, "")
            } else {
                XCTAssertEqual(line, "CUDA device 0 (Tesla T4) has compute capability \(major).\(minor); zotune needs sm_80 or newer (Ampere, Hopper and later)")
            }
        }
    }

    func testDTypeAutoKeepsHalfCheckpointsOnCUDAOnly() throws {
        func r(_ dtype: String, _ ckpt: DType?, _ device: DeviceKind, precision: String = "auto") throws -> WeightStorage {
            try WeightStorage.resolve(dtype: dtype, precision: precision, checkpoint: ckpt, device: device)
        }
        // CUDA: a bf16/f16 checkpoint stays as stored, multiplied on tensor cores (mixed).
        XCTAssertEqual(try r("auto", .bf16, .cuda), WeightStorage(dtype: .bf16, precision: .mixed, autoReason: "the checkpoint's dtype, kept on CUDA"))
        XCTAssertEqual(try r("auto", .f16, .cuda).dtype, .f16)
        XCTAssertEqual(try r("auto", .f16, .cuda).precision, .mixed)
        // An f32 or block-quantized checkpoint loads as f32; the CPU is f32 whatever the checkpoint.
        XCTAssertEqual(try r("auto", .f32, .cuda).dtype, .f32)
        XCTAssertEqual(try r("auto", nil, .cuda).dtype, .f32)
        for c: DType? in [.bf16, .f16, .f32, nil] {
            XCTAssertEqual(try r("auto", c, .cpu), WeightStorage(dtype: .f32, precision: .f32, autoReason: "f32 on the CPU"))
        }
        // Explicit values as before; the header records the resolved name, never "auto".
        XCTAssertEqual(try r("f32", .bf16, .cuda), WeightStorage(dtype: .f32, precision: .mixed))
        XCTAssertEqual(try r("bf16", .f32, .cpu, precision: "f32"), WeightStorage(dtype: .bf16, precision: .f32))
        XCTAssertEqual(try r("gguf", nil, .cuda).dtypeName, "gguf")
        XCTAssertEqual(try r("auto", .bf16, .cuda).dtypeName, "bf16")
        XCTAssertEqual(try r("auto", .bf16, .cuda, precision: "f32").precision, .f32)
        XCTAssertThrowsError(try r("f8", .bf16, .cpu)) { XCTAssertEqual("\($0)", "--dtype must be auto, f32, bf16, f16 or gguf (got f8)") }
        XCTAssertThrowsError(try r("auto", .bf16, .cpu, precision: "tf32"))
        XCTAssertEqual("\(try r("auto", .bf16, .cuda))",
                       "weights bf16 (auto: the checkpoint's dtype, kept on CUDA), GEMMs mixed (bf16 tensor cores, f32 accumulation)")
        XCTAssertEqual("\(try r("auto", .bf16, .cpu))", "weights f32 (auto: f32 on the CPU), GEMMs f32")
    }
}
