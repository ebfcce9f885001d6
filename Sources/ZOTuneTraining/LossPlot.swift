import Foundation

/// An SVG of a run's metrics.jsonl: training loss per step (thin line, with a 20-step moving
/// average) above dev accuracy (or held-out loss) per evaluation. Plain SVG, no dependencies.
public enum LossPlot {
    public static func svg(metricsLines: [String], title: String) -> String {
        var loss: [(Double, Double)] = [], dev: [(Double, Double)] = []
        var devLabel = "dev accuracy (F1 for generation tasks)"
        for line in metricsLines {
            guard let d = line.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                  let step = (o["step"] as? NSNumber)?.doubleValue else { continue }
            if let l = (o["loss"] as? NSNumber)?.doubleValue, l.isFinite { loss.append((step, l)) }
            if let a = ((o["dev_accuracy"] ?? o["dev_f1"]) as? NSNumber)?.doubleValue { dev.append((step, a)) }
            if let p = (o["dev_perplexity"] as? NSNumber)?.doubleValue, p > 0 {
                dev.append((step, log(p)))   // in the training loss's units
                devLabel = "held-out loss (ln perplexity)"
            }
        }
        let w = 720.0, h = 220.0, left = 60.0, right = 20.0
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(2 * h + 40))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"18\" font-size=\"14\">\(escape(title))</text>\n"
        let maxStep = max(1, (loss.map(\.0) + dev.map(\.0)).max() ?? 1)
        func panel(_ points: [(Double, Double)], top: Double, label: String, color: String, smooth: Bool) {
            let bottom = top + h - 30
            out += "<text x=\"\(left)\" y=\"\(top + 12)\">\(label)</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(w - right)\" y2=\"\(bottom)\" stroke=\"#444\"/>\n"
            out += "<line x1=\"\(left)\" y1=\"\(top + 20)\" x2=\"\(left)\" y2=\"\(bottom)\" stroke=\"#444\"/>\n"
            guard let lo0 = points.map(\.1).min(), let hi0 = points.map(\.1).max() else {
                out += "<text x=\"\(left + 10)\" y=\"\(top + 60)\" fill=\"#888\">no data yet</text>\n"
                return
            }
            let pad = max(1e-9, (hi0 - lo0) * 0.05)
            let lo = lo0 - pad, hi = hi0 + pad
            func x(_ s: Double) -> Double { left + (w - left - right) * s / maxStep }
            func y(_ v: Double) -> Double { bottom - (bottom - top - 20) * (v - lo) / (hi - lo) }
            for frac in [0.0, 0.5, 1.0] {
                let v = lo + (hi - lo) * frac
                out += "<text x=\"4\" y=\"\(y(v) + 4)\" fill=\"#444\">\(String(format: "%.3g", v))</text>\n"
            }
            out += "<text x=\"\(w - right - 60)\" y=\"\(bottom + 16)\" fill=\"#444\">step \(Int(maxStep))</text>\n"
            let path = points.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-opacity=\"\(smooth ? 0.35 : 1)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            if smooth && points.count > 20 {
                var avg: [(Double, Double)] = []
                for i in points.indices {
                    let window = points[max(0, i - 19)...i]
                    avg.append((points[i].0, window.reduce(0) { $0 + $1.1 } / Double(window.count)))
                }
                let p2 = avg.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(p2)\"/>\n"
            }
            if !smooth {
                for p in points { out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" ", x(p.0), y(p.1)) + "fill=\"\(color)\"/>\n" }
            }
        }
        panel(loss, top: 30, label: "training loss (ℓ₊ + ℓ₋)/2", color: "#1f77b4", smooth: true)
        panel(dev, top: 30 + h, label: devLabel, color: "#d62728", smooth: false)
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
