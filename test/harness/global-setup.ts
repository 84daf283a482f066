// Root suites: refuse to run without root rather than failing confusingly.
export default function setup(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the netns test project needs root (it creates network namespaces)');
  }
}
