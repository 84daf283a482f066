// The pure NetworkPolicy model: API objects → validated policies → verdicts
// (evaluate) and per-node allow sets (localPlan). No I/O, no kernel.
export * from './types.ts';
export { compileSelector, describeSelector, labelKeyProblem, labelValueProblem, matches, MATCH_ALL } from './selector.ts';
export { compilePolicy, DEFAULT_NAMESPACE, svcNameProblem } from './policy.ts';
export {
  buildCluster,
  ipBlockContains,
  isolates,
  namespaceOf,
  NAMESPACE_NAME_LABEL,
  podPeerMatches,
  resolveNamedPort,
  selectingPolicies,
  selects,
} from './cluster.ts';
export type { Cluster, ClusterObjects } from './cluster.ts';
export { evaluate, explainText, UnknownEndpointError } from './evaluate.ts';
export type { DirectionVerdict, Endpoint, EvaluateOptions, EvaluateProtocol, PolicyRef, RuleMatch, Unpoliced, Verdict } from './evaluate.ts';
export { localPlan, planSize, stableId } from './plan.ts';
export { flowsToCut } from './conntrack.ts';
export type { Flow } from './conntrack.ts';
export type { Group, LocalPlan, LocalPlanOptions, LocalPodPlan, NamedPortEntry, NamedPortSet, PeerSet, PolicyPlan, PortPlan, PortRange, RulePlan } from './plan.ts';
