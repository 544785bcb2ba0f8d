namespace AvatarBridge.Device
{
    /// <summary>Where the device is in its life cycle (shown in the inspector).</summary>
    public enum BridgeStatus
    {
        /// <summary>Not streaming.</summary>
        Idle,
        /// <summary>Asking the server for its capabilities.</summary>
        Connecting,
        /// <summary>The server was unreachable; waiting to try again.</summary>
        Retrying,
        /// <summary>Audio going out, frames coming in.</summary>
        Streaming,
        /// <summary>The clip was animated to its end.</summary>
        Finished,
        /// <summary>Stopped on an error; see <see cref="BridgeClientDevice.StatusMessage"/>.</summary>
        Failed,
    }

    /// <summary>What the device streams.</summary>
    public enum AudioInput
    {
        /// <summary>An AudioClip, played through the AudioSource in sync with the face.</summary>
        Clip,
        /// <summary>A microphone, live (the face follows the voice after the stream's delay).</summary>
        Microphone,
    }

    /// <summary>Frames per second asked of the server.</summary>
    public enum FrameRate
    {
        /// <summary>30 fps.</summary>
        Fps30 = 30,
        /// <summary>60 fps.</summary>
        Fps60 = 60,
    }
}
