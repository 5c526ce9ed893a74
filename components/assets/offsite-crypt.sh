#!/bin/sh
# offsite-crypt.sh: sourced by offsite-sync.sh and recovery-fetch.sh (rclone image, busybox
# sh). Everything that leaves the cluster is encrypted on this side: seal sets up rclone's
# crypt remote "sealed" over $REMOTE (the S3 path of the archive, remote "offsite"), whose
# key is read from ENCRYPTION_KEY_FILE (databaseOffsiteEncryptionKey, a Secret key mounted in
# these two containers only). File contents (XSalsa20-Poly1305) and every file and folder
# name under the prefix are encrypted; the bucket and the prefix stay as they are, so bucket
# rules can name them. The bucket never sees the key: reading the archive back needs it.
#
#   seal   exports RCLONE_CONFIG_SEALED_* (password: the key; salt: derived from it, both
#          obscured as rclone's config wants them); returns 1 with the reason in
#          $sealed_error when the key cannot be read or is shorter than 32 characters
#
# Environment: REMOTE, ENCRYPTION_KEY_FILE.

seal() {
    if [ -z "${ENCRYPTION_KEY_FILE:-}" ] || [ ! -r "$ENCRYPTION_KEY_FILE" ]; then
        sealed_error="cannot read the off-site encryption key (databaseOffsiteEncryptionKey) at ENCRYPTION_KEY_FILE=${ENCRYPTION_KEY_FILE:-}"
        return 1
    fi
    sealed_key=$(cat "$ENCRYPTION_KEY_FILE")
    if [ "${#sealed_key}" -lt 32 ]; then
        sealed_error="the off-site encryption key (databaseOffsiteEncryptionKey) at $ENCRYPTION_KEY_FILE is shorter than 32 characters"
        return 1
    fi
    RCLONE_CONFIG_SEALED_TYPE=crypt
    RCLONE_CONFIG_SEALED_REMOTE=$REMOTE
    RCLONE_CONFIG_SEALED_FILENAME_ENCRYPTION=standard
    RCLONE_CONFIG_SEALED_DIRECTORY_NAME_ENCRYPTION=true
    RCLONE_CONFIG_SEALED_PASSWORD=$(printf '%s' "$sealed_key" | rclone obscure -)
    RCLONE_CONFIG_SEALED_PASSWORD2=$(printf 'ecommerce-platform archive salt:%s' "$sealed_key" | sha256sum | cut -d ' ' -f 1 | rclone obscure -)
    unset sealed_key
    [ -n "$RCLONE_CONFIG_SEALED_PASSWORD" ] && [ -n "$RCLONE_CONFIG_SEALED_PASSWORD2" ] || {
        sealed_error="rclone obscure failed: the crypt remote has no key"
        return 1
    }
    export RCLONE_CONFIG_SEALED_TYPE RCLONE_CONFIG_SEALED_REMOTE RCLONE_CONFIG_SEALED_FILENAME_ENCRYPTION \
        RCLONE_CONFIG_SEALED_DIRECTORY_NAME_ENCRYPTION RCLONE_CONFIG_SEALED_PASSWORD RCLONE_CONFIG_SEALED_PASSWORD2
}
