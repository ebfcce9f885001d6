import Foundation

/// A hyper-parameter sweep around one run: cells (a grid's combinations, or a list), each a run
/// directory; the table of their results and a plot of dev against forwards. `zotune sweep` runs
/// the cells; this part names them, builds their runs and reads their results.
public enum Sweep {
    /// One cell: the options it sets, in the order given ("lr" → "1e-4").
    public struct Cell: Sendable, Equatable {
        public let settings: [(key: String, value: String)]
        public init(_ settings: [(key: String, value: String)]) { self.settings = settings }
        /// Its directory name: "lr=1e-4,optimizer=zo-adam" (slashes become _; a comma in a value
        /// is written \, as --cell takes it, so two cells never share a name).
        public var name: String {
            settings.map { "\($0.key)=\(Sweep.escape($0.value))" }.joined(separator: ",").replacingOccurrences(of: "/", with: "_")
        }
        public static func == (a: Cell, b: Cell) -> Bool { a.name == b.name }
    }

    /// "KEY=V1,V2" → (KEY, [V1, V2]); the error names the option.
    static func split(_ s: String, option: String) throws -> (String, String) {
        guard let eq = s.firstIndex(of: "="), eq != s.startIndex, s.index(after: eq) != s.endIndex else {
            throw RunConfigError("\(option) \(s): expected KEY=VALUE")
        }
        return (String(s[..<eq]).trimmingCharacters(in: .whitespaces), String(s[s.index(after: eq)...]).trimmingCharacters(in: .whitespaces))
    }

    /// A comma-separated list in which `\,` is a comma inside an item and `\\` a backslash
    /// ("lora-targets=q\,v,lr=1e-3" → ["lora-targets=q,v", "lr=1e-3"]).
    public static func splitList(_ s: String) -> [String] {
        var items: [String] = [], item = "", escaped = false
        for c in s {
            if escaped {
                if c != "," && c != "\\" { item.append("\\") }
                item.append(c)
                escaped = false
            } else if c == "\\" { escaped = true } else if c == "," { items.append(item); item = "" } else { item.append(c) }
        }
        if escaped { item.append("\\") }
        items.append(item)
        return items
    }

    /// `value` as an item of such a list.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ",", with: "\\,")
    }

    /// Every combination of the grid axes ("lr=1e-3,1e-4"; the first axis varies slowest), then
    /// the listed cells ("lr=1e-3,optimizer=zo-adam").
    public static func cells(grid: [String], list: [String]) throws -> [Cell] {
        var out: [[(key: String, value: String)]] = grid.isEmpty ? [] : [[]]
        for axis in grid {
            let (key, values) = try split(axis, option: "--grid")
            let vs = splitList(values).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            out = out.flatMap { prefix in vs.map { prefix + [(key: key, value: $0)] } }
        }
        for c in list {
            out.append(try splitList(c).map { part -> (key: String, value: String) in
                let (k, v) = try split(part, option: "--cell")
                return (key: k, value: v)
            })
        }
        let cells = out.map(Cell.init)
        guard !cells.isEmpty else { throw RunConfigError("give the cells: --grid KEY=V1,V2 (repeat for more axes) or --cell KEY=V,KEY=V") }
        var seen = Set<String>()
        for c in cells where !seen.insert(c.name).inserted { throw RunConfigError("cell \(c.name) is given twice") }
        return cells
    }

    /// `base` with the cell's settings: a run-file key ("lr", "seed", "steps", …), or "optimizer"
    /// (a name: its defaults), "eps" (the optimizer's ε), "peft" (a method, or none), or an option
    /// of the cell's optimizer without its -- ("ns-steps", "beta1", "dizo-layers": a list).
    /// Refused, naming the key, as a run file would be.
    public static func run(_ base: TrainingRun, cell: Cell) throws -> TrainingRun {
        guard var o = try JSONSerialization.jsonObject(with: try base.json()) as? [String: Any] else { return base }
        // A number where it reads as one (the run file's types then check it), else text.
        func scalar(_ v: String) -> Any {
            if let i = Int(v) { return i }
            if let d = Double(v) { return d }
            return v == "true" || v == "false" ? v == "true" : v
        }
        func optimizer() -> [String: Any] { (o["optimizer"] as? [String: Any]) ?? ["name": (o["optimizer"] as? String) ?? "mezo"] }
        for (key, value) in cell.settings {
            switch key {
            case "optimizer": o["optimizer"] = ["name": value]
            case "peft": o["peft"] = value == "none" ? nil : ["name": value]
            case "eps":
                guard let eps = Double(value) else { throw RunConfigError("cell \(cell.name): eps: \(value) is not a number") }
                var opt = optimizer()
                opt["eps"] = eps
                o["optimizer"] = opt
            case _ where TrainingRun.keys.contains(key): o[key] = scalar(value)
            default:
                var opt = optimizer()
                let name = opt["name"] as? String ?? "mezo"
                guard let kind = OptimizerKind(rawValue: name), let flag = kind.spec.flags.first(where: { $0.flag == "--" + key }) else {
                    throw RunConfigError("cell \(cell.name): \(key) is neither a run-file key nor an option of --optimizer \(name)")
                }
                // A list field (DiZO's layers, Zoop's) takes the value's comma-separated items.
                let defaults = try JSONSerialization.jsonObject(with: JSONEncoder().encode(OptimizerConfig.defaults(kind))) as? [String: Any]
                opt[flag.key] = defaults?[flag.key] is [Any] ? value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : scalar(value)
                o["optimizer"] = opt
            }
        }
        return try TrainingRun.decode(try JSONSerialization.data(withJSONObject: o), source: "cell \(cell.name)")
    }

    /// What a cell's run directory says about it.
    public struct Row: Codable, Sendable, Equatable {
        public var cell: String
        public var settings: [String: String]
        public var finished: Bool
        public var steps: Int
        public var metric: String
        public var devBefore: Double?
        public var bestDev: Double?
        public var bestStep: Int?
        public var test: Double?
        public var secondsPerStep: Double?
        public var forwardsPerStep: Double?
        public var peakBytes: Int?
        /// (forwards, dev metric) of every dev evaluation, step 0 included.
        public var curve: [[Double]]

        enum CodingKeys: String, CodingKey {
            case cell, settings, finished, steps, metric, devBefore = "dev_before", bestDev = "best_dev", bestStep = "best_step", test
            case secondsPerStep = "seconds_per_step", forwardsPerStep = "forwards_per_step", peakBytes = "peak_bytes", curve
        }
    }

    /// The row of `cell` from its run directory (an unstarted cell has no numbers).
    public static func row(_ cell: Cell, dir: URL) -> Row {
        var row = Row(cell: cell.name, settings: Dictionary(cell.settings.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }),
                      finished: false, steps: 0, metric: "accuracy", curve: [])
        if let h = try? TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot")).header {
            row.finished = h.progress.finished == true
            row.steps = h.progress.completedSteps
            row.devBefore = h.progress.devBefore
            if row.finished { (row.bestDev, row.bestStep) = (h.progress.bestDev, h.progress.bestStep) }
        }
        if let d = try? Data(contentsOf: dir.appendingPathComponent("summary.json")),
           let s = try? JSONSerialization.jsonObject(with: d) as? [String: Any] {
            row.test = (s["test"] as? NSNumber)?.doubleValue
            row.forwardsPerStep = (s["forwards_per_step"] as? NSNumber)?.doubleValue
            row.peakBytes = (s["zo_peak_bytes"] as? NSNumber)?.intValue
        }
        let lines = (try? String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8))?.split(separator: "\n") ?? []
        var trainSeconds = 0.0
        for line in lines {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let step = (o["step"] as? NSNumber)?.doubleValue else { continue }
            if let t = (o["train_seconds"] as? NSNumber)?.doubleValue { trainSeconds = t }
            for (k, v) in o where k.hasPrefix("dev_") {
                guard let v = (v as? NSNumber)?.doubleValue else { continue }
                row.metric = String(k.dropFirst(4))
                row.curve.append([step * (row.forwardsPerStep ?? 2), v])
            }
        }
        if row.steps > 0 && trainSeconds > 0 { row.secondsPerStep = trainSeconds / Double(row.steps) }
        return row
    }

    /// The finished cell with the best dev metric (the first of equals, in cell order).
    public static func best(_ rows: [Row]) -> Row? {
        var best: Row?
        for r in rows where r.finished {
            guard let d = r.bestDev else { continue }
            let lowerIsBetter = r.metric == "perplexity"
            if best == nil || (lowerIsBetter ? d < best!.bestDev! : d > best!.bestDev!) { best = r }
        }
        return best
    }

    /// The markdown table: one row per cell, the best cell marked.
    public static func markdown(_ rows: [Row], title: String) -> String {
        let best = best(rows)?.cell
        let metric = rows.first(where: { $0.finished })?.metric ?? "accuracy"
        func f(_ x: Double?, _ format: String) -> String { x.map { String(format: format, $0) } ?? "—" }
        var s = "# \(title)\n\n| cell | dev \(metric) before | best dev | at step | test | s / step | peak memory |\n|---|---|---|---|---|---|---|\n"
        for r in rows {
            let name = r.cell + (r.cell == best ? " **(best)**" : "") + (r.finished ? "" : " (\(r.steps) steps, unfinished)")
            s += "| \(name) | \(f(r.devBefore, "%.4f")) | \(f(r.bestDev, "%.4f")) | \(r.bestStep.map(String.init) ?? "—") | \(f(r.test, "%.4f")) " +
                 "| \(f(r.secondsPerStep, "%.2f")) | \(r.peakBytes.map { String(format: "%.1f MiB", Double($0) / 1048576) } ?? "—") |\n"
        }
        if let best { s += "\nBest by dev: \(best).\n" }
        return s
    }

    /// Dev metric against forwards, one curve per cell (LossPlot's plain SVG).
    public static func svg(_ rows: [Row], title: String) -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        let w = 720.0, h = 360.0, left = 60.0, right = 200.0, top = 40.0, bottom = h - 40
        let points = rows.flatMap(\.curve)
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"18\" font-size=\"14\">\(LossPlot.escape(title))</text>\n"
        out += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(w - right)\" y2=\"\(bottom)\" stroke=\"#444\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\" stroke=\"#444\"/>\n"
        let metric = rows.first { !$0.curve.isEmpty }?.metric ?? "accuracy"
        out += "<text x=\"\(left)\" y=\"\(top - 6)\">dev \(metric)</text>\n"
        guard let lo0 = points.map({ $0[1] }).min(), let hi0 = points.map({ $0[1] }).max() else { return out + "</svg>\n" }
        let maxX = max(1, points.map { $0[0] }.max() ?? 1)
        let pad = max(1e-9, (hi0 - lo0) * 0.05), lo = lo0 - pad, hi = hi0 + pad
        func x(_ v: Double) -> Double { left + (w - left - right) * v / maxX }
        func y(_ v: Double) -> Double { bottom - (bottom - top) * (v - lo) / (hi - lo) }
        for frac in [0.0, 0.5, 1.0] {
            let v = lo + (hi - lo) * frac
            out += String(format: "<text x=\"4\" y=\"%.1f\" fill=\"#444\">%.3g</text>\n", y(v) + 4, v)
        }
        out += "<text x=\"\(w - right - 90)\" y=\"\(bottom + 16)\" fill=\"#444\">\(Int(maxX)) forwards</text>\n"
        for (i, r) in rows.enumerated() where !r.curve.isEmpty {
            let color = colors[i % colors.count]
            let path = r.curve.map { String(format: "%.1f,%.1f", x($0[0]), y($0[1])) }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            for p in r.curve { out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" ", x(p[0]), y(p[1])) + "fill=\"\(color)\"/>\n" }
            let ly = top + 16 * Double(i)
            out += "<rect x=\"\(w - right + 10)\" y=\"\(ly - 8)\" width=\"10\" height=\"10\" fill=\"\(color)\"/>\n"
            out += "<text x=\"\(w - right + 26)\" y=\"\(ly + 1)\">\(LossPlot.escape(r.cell))</text>\n"
        }
        return out + "</svg>\n"
    }
}
