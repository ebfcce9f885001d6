import ArgumentParser
import ZOTuneBackend

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the device `--device` selects and why.")

    @OptionGroup var options: DeviceOptions

    func run() throws {
        let backend = try options.backend()
        print(backend.summary)
        print(WeightStorage.autoPolicy(device: backend.device))
    }
}
