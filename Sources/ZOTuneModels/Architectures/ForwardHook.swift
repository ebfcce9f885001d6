import ZOTuneBackend

/// A seam in the forward pass (docs/architecture.md): an observer the model calls at the start of
/// every forward and after every linear layer, in forward order. It may change the layer's output
/// in place (Zoop adds activation noise; adapters add their low-rank term) or read the layer's
/// input and output (Zoop's local update of the weight right after its clean use). The model holds
/// at most one hook; nil costs nothing.
public protocol ForwardHook: AnyObject {
    /// A forward over `batch` begins (token rows are b·length + t, as in every activation).
    func forwardBegins(_ batch: TokenBatch)
    /// The linear layer `layer` (its role, weight name and storage layout) produced `output`
    /// (rows, out) = input·Wᵀ + b from `input` (rows, in).
    func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor)
    /// Keys and values every sequence of this forward attends to before its first token (prefix
    /// and prompt tuning), or nil. Asked once per forward, after `forwardBegins`.
    func attentionPrefix(_ model: CausalLM) throws -> AttentionPrefix?
    /// P of `attentionPrefix` (0: none), known before a forward: what a KV cache adds to its capacity.
    var virtualPositions: Int { get }
}

public extension ForwardHook {
    func attentionPrefix(_ model: CausalLM) throws -> AttentionPrefix? { nil }
    var virtualPositions: Int { 0 }
}

/// P virtual positions in front of every sequence: per layer P rows of (kvHeads·headDim) keys and
/// values as attention uses them (keys after RoPE). Row r of layer l's keys starts at
/// `keys[l].flatSlice(r·stride)`. Real tokens take positions P, P+1, … (docs/peft.md: the
/// convention of HF PEFT, under which a prefix made from tokens t equals the model on [t, x]).
public struct AttentionPrefix {
    public let length: Int
    public let keys: [Tensor]
    public let values: [Tensor]
    public let stride: Int

    public init(length: Int, keys: [Tensor], values: [Tensor], stride: Int) {
        self.length = length
        self.keys = keys
        self.values = values
        self.stride = stride
    }
}

/// Several hooks in order: each sees the output as the previous one left it (adapters first,
/// then an optimizer's activation noise on the adapted output).
public final class ForwardHookChain: ForwardHook {
    public let hooks: [any ForwardHook]
    public init(_ hooks: [any ForwardHook]) { self.hooks = hooks }

    public func forwardBegins(_ batch: TokenBatch) { for h in hooks { h.forwardBegins(batch) } }

    public func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {
        for h in hooks { h.linearDone(layer, input: input, output: output) }
    }

    public var virtualPositions: Int { hooks.map(\.virtualPositions).max() ?? 0 }

    public func attentionPrefix(_ model: CausalLM) throws -> AttentionPrefix? {
        for h in hooks { if let p = try h.attentionPrefix(model) { return p } }
        return nil
    }
}
