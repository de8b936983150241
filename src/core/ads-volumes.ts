// The volumes ADS needs in `envoy` (SPEC.md §4a): the control plane's CA from a ConfigMap and the
// proxy's client certificate from a Secret, both of the pod's namespace, mounted read-only where the
// bootstrap's file-based SDS reads them. Pure.
import { ADS_CA_DIR, ADS_CA_VOLUME_NAME, ADS_CLIENT_CERT_DIR, ADS_CLIENT_CERT_VOLUME_NAME } from '../constants.ts';
import type { Container, EffectiveProxyConfig, Volume } from './types.ts';

type VolumeMount = NonNullable<Container['volumeMounts']>[number];

/**
 * Returns the ADS volumes and envoy's mounts of them. Only the keys Envoy reads are projected; no
 * subPath, so the kubelet's updates reach the mount (a subPath mount is never updated). Not
 * optional: a missing ConfigMap or Secret keeps the pod from starting with an event that names it.
 */
export function adsVolumes(proxy: EffectiveProxyConfig): { volumes: Volume[]; volumeMounts: VolumeMount[] } {
  const ads = proxy.ads;
  const volumes: Volume[] = [];
  const volumeMounts: VolumeMount[] = [];
  if (ads === null) return { volumes, volumeMounts };
  if (ads.caConfigMap !== null) {
    volumes.push({ name: ADS_CA_VOLUME_NAME, configMap: { name: ads.caConfigMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
    volumeMounts.push({ name: ADS_CA_VOLUME_NAME, mountPath: ADS_CA_DIR, readOnly: true });
  }
  if (ads.clientCertSecret !== null) {
    volumes.push({
      name: ADS_CLIENT_CERT_VOLUME_NAME,
      secret: {
        secretName: ads.clientCertSecret,
        items: [
          { key: 'tls.crt', path: 'tls.crt' },
          { key: 'tls.key', path: 'tls.key' },
        ],
      },
    });
    volumeMounts.push({ name: ADS_CLIENT_CERT_VOLUME_NAME, mountPath: ADS_CLIENT_CERT_DIR, readOnly: true });
  }
  return { volumes, volumeMounts };
}
