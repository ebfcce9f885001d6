/// How a run stores and multiplies its weights: `--dtype` and `--precision` resolved for one
/// checkpoint on one device (docs/cuda.md, "Precision").
public struct WeightStorage: Sendable, Equatable, CustomStringConvertible {
    /// Storage of the unquantized matrices: f32, f16 or bf16.
    public let dtype: DType
    /// `--dtype gguf`: a GGUF file's quantized matrices stay in their blocks (f32 elsewhere).
    public let keepBlocks: Bool
    public let precision: GemmPrecision
    /// Why `auto` chose `dtype` (nil when the dtype was given).
    public let autoReason: String?

    public init(dtype: DType, keepBlocks: Bool = false, precision: GemmPrecision, autoReason: String? = nil) {
        (self.dtype, self.keepBlocks, self.precision, self.autoReason) = (dtype, keepBlocks, precision, autoReason)
    }

    /// What a run header records as `base.dtype`, and what a resume or replay loads: never "auto",
    /// so a run continued on another device keeps the storage it started with.
    public var dtypeName: String { keepBlocks ? "gguf" : dtype.rawValue }

    /// One line for headers and `zotune devices`: "weights bf16 (auto: the checkpoint's dtype, kept
    /// on CUDA), GEMMs mixed (bf16 tensor cores, f32 accumulation)".
    public var description: String {
        let gemm: String
        switch precision {
        case .f32: gemm = "f32"
        case .mixed: gemm = dtype == .f32 || keepBlocks ? "mixed (f32 weights: f32 SGEMM)" : "mixed (\(dtype) tensor cores, f32 accumulation)"
        case .tf32: gemm = "tf32 (TF32 tensor cores for f32 weights)"
        }
        return "weights \(dtypeName)\(autoReason.map { " (auto: \($0))" } ?? ""), GEMMs \(gemm)"
    }

    /// What `--dtype auto` and `--precision auto` do on `device`, in one line (`zotune devices`).
    public static func autoPolicy(device: DeviceKind) -> String {
        device == .cuda
            ? "--dtype auto: bf16/f16 checkpoints stay in their dtype, GEMMs on tensor cores (--precision auto: mixed); f32 and GGUF-block checkpoints load as f32"
            : "--dtype auto: f32 weights, f32 GEMMs (--precision auto: f32)"
    }

    /// `dtype` auto: on CUDA a bf16 or f16 checkpoint stays in its dtype, so its GEMMs run on tensor
    /// cores under mixed precision with half the memory of f32 (an f32 load would widen it and
    /// multiply through SGEMM: about 8x slower on a 7B model). An f32 or block-quantized checkpoint
    /// loads as f32 (blocks widened: bf16 would round their values), and on the CPU everything is
    /// f32 as before (its fast GEMM is f32; mixed there is only an emulation). `checkpoint` is the
    /// dtype most of the checkpoint's parameters are stored in (nil for GGML blocks). `precision`
    /// is resolved as GemmPrecision.resolve (auto: mixed on CUDA, f32 on the CPU).
    public static func resolve(dtype: String, precision: String, checkpoint: DType?, device: DeviceKind) throws -> WeightStorage {
        let gemm = try GemmPrecision.resolve(precision, device: device)
        switch dtype {
        case "auto":
            if device == .cuda, let c = checkpoint, c == .bf16 || c == .f16 {
                return WeightStorage(dtype: c, precision: gemm, autoReason: "the checkpoint's dtype, kept on CUDA")
            }
            let why = device == .cpu ? "f32 on the CPU"
                : checkpoint == nil ? "quantized checkpoint widened to f32" : "the checkpoint's dtype"
            return WeightStorage(dtype: .f32, precision: gemm, autoReason: why)
        case "gguf":
            return WeightStorage(dtype: .f32, keepBlocks: true, precision: gemm)
        default:
            guard let d = DType(rawValue: dtype), d.isFloat else {
                throw BackendError("--dtype must be auto, f32, bf16, f16 or gguf (got \(dtype))")
            }
            return WeightStorage(dtype: d, precision: gemm)
        }
    }
}
