import ZOTuneBackend

extension ModelFile {
    /// The float dtype most of the checkpoint's parameters are stored in, or nil when most are GGML
    /// blocks (all block formats counted together): what `--dtype auto` keeps on CUDA (WeightStorage).
    public var storedFloatDType: DType? {
        var counts: [DType?: Int] = [:]
        for t in reader.tensors.values {
            let d: DType? = t.type == .f32 ? .f32 : t.type == .f16 ? .f16 : t.type == .bf16 ? .bf16 : nil
            counts[d, default: 0] += t.count
        }
        // Ties (never in a real checkpoint) go to the wider type: f32, then f16, bf16, blocks.
        let order: [DType?] = [.f32, .f16, .bf16, nil]
        let top = order.map { counts[$0, default: 0] }.max() ?? 0
        return order.first { counts[$0, default: 0] == top } ?? nil
    }
}
