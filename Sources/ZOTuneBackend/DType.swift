import ZOTuneKernels

/// Element type of a device buffer. f32/f16/bf16 hold numbers (math is always f32; f16/bf16 are
/// storage formats); i32 holds token ids and positions, u8 attention masks.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32, f16, bf16, i32, u8

    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .u8: return 1
        }
    }

    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
    public var description: String { rawValue }

    /// The kernels' storage dtype code (floating types only).
    public var code: zt_dtype {
        switch self {
        case .f32: return zt_dtype(ZT_F32)
        case .f16: return zt_dtype(ZT_F16)
        case .bf16: return zt_dtype(ZT_BF16)
        case .i32, .u8: preconditionFailure("\(self) is not a floating storage dtype")
        }
    }
}
