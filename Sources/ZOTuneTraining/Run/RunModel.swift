import Foundation
import ZOTuneBackend
import ZOTuneModels

/// The model side of a run, without data: the checkpoint with its storage resolved, the adapter
/// and the optimizer. `prepare` (train), `replay`, `zotune memory` and `zotune bench step /
/// optimizers` all build them here, so a step sized or timed is the step `train` runs.
extension TrainingRun {
    /// The checkpoint with the run's `--sliding-window` applied, and the window that option set:
    /// nil when it is absent or changes nothing (0 on a file without a window, or the window the
    /// file states), so the run header records only a window the file does not carry.
    public func openModel() throws -> (file: ModelFile, windowSet: Int?) {
        let stated = try ModelFile.open(model), file = try stated.overridingSlidingWindow(slidingWindow)
        return (file, file.config.slidingWindow == stated.config.slidingWindow ? nil : slidingWindow)
    }

    /// The checkpoint (`file`: already open by `openModel`), loaded with `dtype` and `precision`
    /// resolved (auto included) for `backend`'s device.
    public func loadModel(on backend: KernelBackend, file: ModelFile? = nil) throws -> (file: ModelFile, storage: WeightStorage, model: CausalLM) {
        let file = try file ?? openModel().file
        let storage = try WeightStorage.resolve(dtype: dtype, precision: precision, checkpoint: file.storedFloatDType, device: backend.device)
        let lm = try file.load(on: backend, dtype: storage.dtype, keepBlocks: storage.keepBlocks, precision: storage.precision)
        return (file, storage, lm)
    }

    /// The run's adapter over `model` (its sizes checked against the model's), or nil without one.
    public func makeAdapter(model: CausalLM) throws -> (any PEFTAdapter)? {
        try Self.check(peft, model: model.config)
        return try peft?.make(model: model)
    }

    /// What the run trains in `model`: the adapter's tensors, else the optimizer's set of the base.
    public func trainableSet(model: CausalLM, adapter: (any PEFTAdapter)?) throws -> TrainableSet {
        if let adapter { return adapter.set }
        return try resolved().optimizer!.trainableSet(model)
    }

    /// The run's optimizer (its resolved defaults) over the adapter, the block partition or the
    /// optimizer's own trainable set of `model`.
    public func makeOptimizer(model: CausalLM, adapter: (any PEFTAdapter)?) throws -> any ZOOptimizer {
        try Self.makeOptimizer(resolved().optimizer!, model: model, adapter: adapter, blocks: blocks)
    }

    /// The one place an optimizer of a run is built. An optimizer built on the model (Zoop's noisy
    /// layers, lowrank-spsa's probe hook) is built that way when it trains the base unpartitioned;
    /// `set` (a replay's, from the run header) replaces the optimizer's own trainable set.
    public static func makeOptimizer(_ config: OptimizerConfig, model: CausalLM, adapter: (any PEFTAdapter)?, blocks: BlockwiseOptions?,
                                     set: TrainableSet? = nil) throws -> any ZOOptimizer {
        // The one place the frozen quantized base is refused for full tuning.
        if model.weights.hasBlocks && adapter == nil {
            // An optimizer that refuses adapters (lowrank-spsa moves the base's own matrices) has no adapter to suggest.
            if config.spec.refusesPEFT != nil {
                throw RunConfigError("--dtype gguf keeps the base quantized and frozen, and --optimizer \(config.kind) moves the base itself (no --peft): "
                                     + "load it as floats (--dtype f32, or bf16), or train an adapter with another optimizer (--peft lora, prefix or prompt)")
            }
            throw RunConfigError("--dtype gguf keeps the base quantized and frozen: train an adapter over it (--peft lora, prefix or prompt)")
        }
        do {
            if adapter == nil && blocks == nil && (set == nil || config.spec.buildOnModel != nil) { return try config.make(model: model) }
            return try config.make(set: try adapter?.set ?? set ?? config.trainableSet(model), backend: model.backend, blocks: blocks)
        } catch let e as BlockError { throw RunConfigError(e.description) }
    }
}
