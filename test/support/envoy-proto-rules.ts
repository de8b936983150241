// The rules protos cannot express (src/envoy/rules.ts), for the tests.
export * from '../../src/envoy/rules.ts';
