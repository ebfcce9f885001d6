import ZOTuneBackend

/// A seam in the forward pass (docs/architecture.md): an observer the model calls at the start of
/// every forward and after every linear layer, in forward order. It may change the layer's output
/// in place (Zoop adds activation noise; adapters add their low-rank term) or read the layer's
/// input and output (Zoop's local update of the weight right after its clean use). The model holds
/// at most one hook; nil costs nothing.
public protocol ForwardHook: AnyObject {
    /// A forward over `batch` begins (token rows are b·length + t, as in every activation).
    func forwardBegins(_ batch: TokenBatch)
    /// The linear layer with weight `weight` produced `output` (rows, out) = input·Wᵀ + b from
    /// `input` (rows, in); `conv1D`: the weight is stored (in, out), GPT-2's layout.
    func linearDone(weight: String, input: Tensor, output: Tensor, conv1D: Bool)
}

/// Several hooks in order: each sees the output as the previous one left it (adapters first,
/// then an optimizer's activation noise on the adapted output).
public final class ForwardHookChain: ForwardHook {
    public let hooks: [any ForwardHook]
    public init(_ hooks: [any ForwardHook]) { self.hooks = hooks }

    public func forwardBegins(_ batch: TokenBatch) { for h in hooks { h.forwardBegins(batch) } }

    public func linearDone(weight: String, input: Tensor, output: Tensor, conv1D: Bool) {
        for h in hooks { h.linearDone(weight: weight, input: input, output: output, conv1D: conv1D) }
    }
}
