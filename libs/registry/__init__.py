"""The OCI distribution client used by image-scan: tag lists and manifest digests from real registries."""

from libs.registry.client import (
    MANIFEST_ACCEPT,
    AuthCache,
    AuthenticationError,
    Credentials,
    ImageName,
    RateLimited,
    RegistryClient,
    RegistryError,
    credentials_from_dockerconfig,
    parse_challenge,
    parse_image,
)

__all__ = [
    "MANIFEST_ACCEPT",
    "AuthCache",
    "AuthenticationError",
    "Credentials",
    "ImageName",
    "RateLimited",
    "RegistryClient",
    "RegistryError",
    "credentials_from_dockerconfig",
    "parse_challenge",
    "parse_image",
]
